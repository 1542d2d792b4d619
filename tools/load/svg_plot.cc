#include "tools/load/svg_plot.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace llama::load {
namespace {

// Canvas and plot area, in SVG user units (pixels).
constexpr double kWidth = 760, kHeight = 500;
constexpr double kLeft = 90, kRight = 30, kTop = 56, kBottom = 70;
constexpr const char* kColors[] = {"#1f5fbf", "#d03030", "#208a40", "#e08000", "#7040b0", "#008b8b"};

std::string TickText(double value, double step) {
  // As many decimals as the step needs (0.25 → 2), none for integers.
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10, decimals) - std::round(step * std::pow(10, decimals))) > 1e-9) {
    ++decimals;
  }
  return absl::StrFormat("%.*f", decimals, value);
}

struct Frame {
  double x_max, y_max;
  double X(double x) const { return kLeft + (kWidth - kLeft - kRight) * x / x_max; }
  double Y(double y) const { return kHeight - kBottom - (kHeight - kTop - kBottom) * y / y_max; }
};

void DrawAxes(const PlotSpec& spec, const std::vector<double>& x_ticks, const std::vector<double>& y_ticks,
              const Frame& f, std::string* out) {
  const double x_step = x_ticks.size() > 1 ? x_ticks[1] : 1, y_step = y_ticks.size() > 1 ? y_ticks[1] : 1;
  for (double t : x_ticks) {
    absl::StrAppendFormat(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n",
                          f.X(t), f.Y(0), f.X(t), f.Y(f.y_max));
    absl::StrAppendFormat(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\"/>\n",
                          f.X(t), f.Y(0), f.X(t), f.Y(0) + 6);
    absl::StrAppendFormat(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", f.X(t),
                          f.Y(0) + 22, TickText(t, x_step));
  }
  for (double t : y_ticks) {
    absl::StrAppendFormat(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n",
                          f.X(0), f.Y(t), f.X(f.x_max), f.Y(t));
    absl::StrAppendFormat(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\"/>\n",
                          f.X(0) - 6, f.Y(t), f.X(0), f.Y(t));
    absl::StrAppendFormat(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", f.X(0) - 10,
                          f.Y(t) + 5, TickText(t, y_step));
  }
  // The axes themselves, on top of the grid.
  absl::StrAppendFormat(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\" stroke-width=\"1.5\"/>\n",
                        f.X(0), f.Y(0), f.X(f.x_max), f.Y(0));
  absl::StrAppendFormat(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\" stroke-width=\"1.5\"/>\n",
                        f.X(0), f.Y(0), f.X(0), f.Y(f.y_max));
  absl::StrAppendFormat(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                        (f.X(0) + f.X(f.x_max)) / 2, kHeight - 20, EscapeXml(spec.x_label));
  const double y_mid = (f.Y(0) + f.Y(f.y_max)) / 2;
  absl::StrAppendFormat(out, "<text x=\"24\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 24 %.1f)\">%s</text>\n",
                        y_mid, y_mid, EscapeXml(spec.y_label));
  absl::StrAppendFormat(out, "<text x=\"%.1f\" y=\"30\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">%s</text>\n",
                        kWidth / 2, EscapeXml(spec.title));
}

void DrawSeries(const PlotSeries& series, const char* color, const Frame& f, std::string* out) {
  std::string points;
  for (const PlotPoint& p : series.points) absl::StrAppendFormat(&points, "%.1f,%.1f ", f.X(p.x), f.Y(p.y));
  absl::StrAppendFormat(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n", color,
                        points);
  for (const PlotPoint& p : series.points) {
    absl::StrAppendFormat(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", f.X(p.x), f.Y(p.y), color);
    absl::StrAppendFormat(out, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n", f.X(p.x) + 8, f.Y(p.y) - 8,
                          color, EscapeXml(p.label));
  }
}

// The legend's top-left corner: the first of the plot's top-left, top-right and bottom-right corners where no point
// or point label falls under it (top left when none is free).
std::pair<double, double> LegendCorner(const PlotSpec& spec, const Frame& f) {
  constexpr double kLegendWidth = 230, kLabelWidth = 60, kLabelHeight = 20;
  const double height = 20.0 * spec.series.size() + 8;
  const double corners[][2] = {{kLeft + 16, kTop + 8},
                               {kWidth - kRight - kLegendWidth, kTop + 8},
                               {kWidth - kRight - kLegendWidth, f.Y(0) - height - 8}};
  for (const auto& corner : corners) {
    const double x0 = corner[0], y0 = corner[1] - 12, x1 = x0 + kLegendWidth, y1 = y0 + height;
    bool free = true;
    for (const PlotSeries& s : spec.series) {
      for (const PlotPoint& p : s.points) {
        const double px = f.X(p.x), py = f.Y(p.y);
        // The point and its label's box [px, px + label] × [py - label height, py].
        free = free && (px + kLabelWidth < x0 || px - 6 > x1 || py + 6 < y0 || py - kLabelHeight > y1);
      }
    }
    if (free) return {corner[0], corner[1]};
  }
  return {corners[0][0], corners[0][1]};
}

void DrawLegend(const PlotSpec& spec, const Frame& f, std::string* out) {
  auto [x, y] = LegendCorner(spec, f);
  for (size_t i = 0; i < spec.series.size(); ++i, y += 20) {
    const char* color = kColors[i % std::size(kColors)];
    absl::StrAppendFormat(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                          x, y, x + 24, y, color);
    absl::StrAppendFormat(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", x + 12, y, color);
    absl::StrAppendFormat(out, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 32, y + 5,
                          EscapeXml(spec.series[i].name));
  }
}

}  // namespace

std::vector<double> NiceTicks(double max_value, int max_ticks) {
  if (!(max_value > 0) || !std::isfinite(max_value)) return {0, 1};
  const double raw_step = max_value / std::max(1, max_ticks);
  const double magnitude = std::pow(10, std::floor(std::log10(raw_step)));
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * magnitude >= raw_step * (1 - 1e-12)) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> ticks;
  const int n = static_cast<int>(std::ceil(max_value / step - 1e-9));
  for (int i = 0; i <= std::max(n, 1); ++i) ticks.push_back(i * step);
  return ticks;
}

std::string EscapeXml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string RenderSvg(const PlotSpec& spec) {
  double x_max = 0, y_max = 0;
  for (const PlotSeries& s : spec.series) {
    for (const PlotPoint& p : s.points) {
      x_max = std::max(x_max, p.x);
      y_max = std::max(y_max, p.y);
    }
  }
  // Head room so the top point's label stays inside the plot.
  const std::vector<double> x_ticks = NiceTicks(x_max * 1.08, 8), y_ticks = NiceTicks(y_max * 1.08, 8);
  const Frame frame{x_ticks.back(), y_ticks.back()};
  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"13\">\n",
      kWidth, kHeight, kWidth, kHeight);
  absl::StrAppendFormat(&out, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", kWidth,
                        kHeight);
  DrawAxes(spec, x_ticks, y_ticks, frame, &out);
  for (size_t i = 0; i < spec.series.size(); ++i) {
    DrawSeries(spec.series[i], kColors[i % std::size(kColors)], frame, &out);
  }
  DrawLegend(spec, frame, &out);
  out += "</svg>\n";
  return out;
}

}  // namespace llama::load
