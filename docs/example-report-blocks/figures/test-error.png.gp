# Written by resweep plot; run `gnuplot THIS_FILE` to draw it again.
set terminal pngcairo size 1200,750 noenhanced font 'DejaVu Sans,11'
set output 'docs/example-report-blocks/figures/test-error.png'
set datafile missing '?'
set title 'blocks-fmnist: test_error, mean over seeds with 95% CI'
set grid
set key outside right top
set xlabel 'epoch'
set ylabel 'test error (%), rolling mean of 2 points'
set xtics 1
plot \
  'docs/example-report-blocks/figures/test-error.png.dat' index 0 using 1:3:4 with filledcurves fillcolor rgb '#1f77b4' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report-blocks/figures/test-error.png.dat' index 1 using 1:3:4 with filledcurves fillcolor rgb '#ff7f0e' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report-blocks/figures/test-error.png.dat' index 2 using 1:3:4 with filledcurves fillcolor rgb '#2ca02c' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report-blocks/figures/test-error.png.dat' index 3 using 1:3:4 with filledcurves fillcolor rgb '#d62728' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report-blocks/figures/test-error.png.dat' index 4 using 1:3:4 with filledcurves fillcolor rgb '#9467bd' fillstyle transparent solid 0.2 noborder notitle, \
  'docs/example-report-blocks/figures/test-error.png.dat' index 0 using 1:2 with lines linecolor rgb '#1f77b4' linewidth 2 title 'model.block=reference (n=2)', \
  'docs/example-report-blocks/figures/test-error.png.dat' index 1 using 1:2 with lines linecolor rgb '#ff7f0e' linewidth 2 title 'model.block=bn-after-add (n=2)', \
  'docs/example-report-blocks/figures/test-error.png.dat' index 2 using 1:2 with lines linecolor rgb '#2ca02c' linewidth 2 title 'model.block=no-relu (n=2)', \
  'docs/example-report-blocks/figures/test-error.png.dat' index 3 using 1:2 with lines linecolor rgb '#d62728' linewidth 2 title 'model.block=no-relu-bn-after-add (n=2)', \
  'docs/example-report-blocks/figures/test-error.png.dat' index 4 using 1:2 with lines linecolor rgb '#9467bd' linewidth 2 title 'model.block=preact (n=2)'
