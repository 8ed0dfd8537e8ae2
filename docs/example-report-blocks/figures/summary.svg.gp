# Written by resweep plot; run `gnuplot THIS_FILE` to draw it again.
set terminal svg size 960,600 dynamic noenhanced font 'DejaVu Sans,12' background rgb 'white'
set output 'docs/example-report-blocks/figures/summary.svg'
set datafile missing '?'
set title 'blocks-fmnist: test error, mean of the last 2 epochs with 95% CI'
set grid
set key outside right top
set xlabel 'model.block'
set ylabel 'test error (%), mean of the last 2 epochs, 95% CI'
set offsets graph 0.05, graph 0.05, 0, 0
set xtics ('bn-after-add' 1, 'no-relu' 2, 'no-relu-bn-after-add' 3, 'preact' 4, 'reference' 0)
plot \
  'docs/example-report-blocks/figures/summary.svg.dat' index 0 using 1:2:3:4 with yerrorlines linecolor rgb '#1f77b4' linewidth 2 pointtype 7 pointsize 0.8 title 'mean of last 2 epochs'
