# Written by resweep plot; run `gnuplot THIS_FILE` to draw it again.
set terminal svg size 960,600 dynamic noenhanced font 'DejaVu Sans,12' background rgb 'white'
set output 'docs/example-report/figures/summary.svg'
set datafile missing '?'
set title 'fig6-depth-fmnist: test error, mean of the last 2 epochs with 95% CI'
set grid
set key outside right top
set xlabel 'model.depth_n'
set ylabel 'test error (%), mean of the last 2 epochs, 95% CI'
set offsets graph 0.05, graph 0.05, 0, 0
set xtics (1, 2, 3, 5)
plot \
  'docs/example-report/figures/summary.svg.dat' index 0 using 1:2:3:4 with yerrorlines linecolor rgb '#1f77b4' linewidth 2 pointtype 7 pointsize 0.8 title 'mean of last 2 epochs'
