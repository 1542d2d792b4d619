// A hand-written SVG line plot: throughput (x) against latency (y) over a sweep, one labelled point per level,
// one polyline per series (e.g. k = 1 and k = 4), linear axes from 0 with 1-2-5 ticks, grid, axis labels and a
// legend. Self-contained (no scripts, no external fonts or styles), so it opens in any browser.
#pragma once

#include <string>
#include <vector>

namespace llama::load {

struct PlotPoint {
  double x = 0;
  double y = 0;
  std::string label;  // drawn next to the point ("c=16")
};

struct PlotSeries {
  std::string name;  // the legend entry
  std::vector<PlotPoint> points;  // in sweep order (joined by a line)
};

struct PlotSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
};

std::string RenderSvg(const PlotSpec& spec);

// Tick values 0, step, 2·step, … covering [0, max_value], step a 1, 2 or 5 times a power of ten chosen so there are
// at most max_ticks intervals; {0, 1} when max_value <= 0.
std::vector<double> NiceTicks(double max_value, int max_ticks);

// Escapes &, <, >, " and ' for SVG text and attribute values.
std::string EscapeXml(const std::string& text);

}  // namespace llama::load
