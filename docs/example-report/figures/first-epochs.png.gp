# Written by resweep plot; run `gnuplot THIS_FILE` to draw it again.
set terminal pngcairo size 1200,750 noenhanced font 'DejaVu Sans,11'
set output 'docs/example-report/figures/first-epochs.png'
set datafile missing '?'
set title 'fig6-depth-fmnist: train_loss, mean over seeds +- 1 std'
set grid
set key outside right top
set xlabel 'epoch'
set ylabel 'training loss'
set xrange [*:2]
set xtics 1
plot \
  'docs/example-report/figures/first-epochs.png.dat' index 0 using 1:3:4 with filledcurves fillcolor rgb '#1f77b4' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report/figures/first-epochs.png.dat' index 1 using 1:3:4 with filledcurves fillcolor rgb '#ff7f0e' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report/figures/first-epochs.png.dat' index 2 using 1:3:4 with filledcurves fillcolor rgb '#2ca02c' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report/figures/first-epochs.png.dat' index 3 using 1:3:4 with filledcurves fillcolor rgb '#d62728' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report/figures/first-epochs.png.dat' index 0 using 1:2 with lines linecolor rgb '#1f77b4' linewidth 2 title 'model.depth_n=1 (n=2)', \
  'docs/example-report/figures/first-epochs.png.dat' index 1 using 1:2 with lines linecolor rgb '#ff7f0e' linewidth 2 title 'model.depth_n=2 (n=2)', \
  'docs/example-report/figures/first-epochs.png.dat' index 2 using 1:2 with lines linecolor rgb '#2ca02c' linewidth 2 title 'model.depth_n=3 (n=2)', \
  'docs/example-report/figures/first-epochs.png.dat' index 3 using 1:2 with lines linecolor rgb '#d62728' linewidth 2 title 'model.depth_n=5 (n=2)'
