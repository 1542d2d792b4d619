// The sweep plot: tick choice, escaping, the SVG's elements, and that a browser renders it. The render check runs
// headless Chromium (apt `chromium`, installed by scripts/install-deps.sh) with flags that need no network, takes
// a screenshot and decodes the PNG with libpng: not blank, both series' colours present where their lines run,
// dark axis/text pixels present. ~3 s, so it is part of the default test run.
#include "tools/load/svg_plot.h"

#include <png.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama::load {
namespace {

using ::testing::HasSubstr;

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

PlotSpec TwoSeries() {
  PlotSpec spec;
  spec.title = "throughput vs latency";
  spec.x_label = "output tokens/s";
  spec.y_label = "e2e p50 (ms)";
  spec.series.push_back({"k=1 <streamed>", {{700, 180, "c=1"}, {2000, 250, "c=4"}, {3100, 650, "c=16"},
                                            {3400, 2400, "c=64"}}});
  spec.series.push_back({"k=4 & scored", {{400, 450, "c=1"}, {1200, 700, "c=4"}, {1500, 2000, "c=16"},
                                          {1550, 7500, "c=64"}}});
  return spec;
}

TEST(NiceTicksTest, OneTwoFiveSteps) {
  EXPECT_EQ(NiceTicks(95, 8), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(NiceTicks(3700, 8), (std::vector<double>{0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000}));
  EXPECT_EQ(NiceTicks(7, 8), (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7}));
  const std::vector<double> small = NiceTicks(0.9, 5);
  ASSERT_EQ(small.size(), 6u);
  EXPECT_NEAR(small.back(), 1.0, 1e-12);
  EXPECT_EQ(NiceTicks(0, 8), (std::vector<double>{0, 1}));
}

TEST(SvgPlotTest, ElementsLabelsAndEscaping) {
  const std::string svg = RenderSvg(TwoSeries());
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("</svg>"));
  EXPECT_EQ(Count(svg, "<polyline"), 2);
  EXPECT_EQ(Count(svg, "<circle"), 8 + 2);  // every point, and one marker per legend entry
  EXPECT_EQ(Count(svg, ">c=64</text>"), 2);
  EXPECT_THAT(svg, HasSubstr("k=1 &lt;streamed&gt;"));
  EXPECT_THAT(svg, HasSubstr("k=4 &amp; scored"));
  EXPECT_THAT(svg, HasSubstr(">output tokens/s</text>"));
  EXPECT_THAT(svg, HasSubstr("rotate(-90"));  // the y label
  EXPECT_THAT(svg, HasSubstr(">3500</text>"));  // an x tick (max 3400 · 1.08 → ticks of 500 to 4000)
  EXPECT_THAT(svg, HasSubstr(">10000</text>"));  // the top y tick (7500 · 1.08 → 0..10000 in steps of 2000)
  EXPECT_EQ(EscapeXml("a<b & 'c'\""), "a&lt;b &amp; &apos;c&apos;&quot;");
}

std::string FindChromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    const std::string command = absl::StrCat("command -v ", name, " > /dev/null 2>&1");
    if (std::system(command.c_str()) == 0) return name;
  }
  return "";
}

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgba;  // [height][width][4]
  const uint8_t* At(int x, int y) const { return &rgba[(static_cast<size_t>(y) * width + x) * 4]; }
};

bool ReadPng(const std::string& path, Image* image) {
  png_image png = {};
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, path.c_str())) return false;
  png.format = PNG_FORMAT_RGBA;
  image->width = static_cast<int>(png.width);
  image->height = static_cast<int>(png.height);
  image->rgba.resize(PNG_IMAGE_SIZE(png));
  const bool ok = png_image_finish_read(&png, nullptr, image->rgba.data(), 0, nullptr) != 0;
  png_image_free(&png);
  return ok;
}

bool Near(const uint8_t* px, int r, int g, int b, int tolerance) {
  return std::abs(px[0] - r) <= tolerance && std::abs(px[1] - g) <= tolerance && std::abs(px[2] - b) <= tolerance;
}

TEST(SvgPlotTest, ChromiumRendersIt) {
  const std::string chromium = FindChromium();
  ASSERT_FALSE(chromium.empty()) << "no chromium in PATH: scripts/install-deps.sh installs apt `chromium`";
  const std::string dir = ::testing::TempDir();
  const std::string svg_path = dir + "/sweep_plot.svg", png_path = dir + "/sweep_plot.png";
  std::ofstream(svg_path) << RenderSvg(TwoSeries());
  std::remove(png_path.c_str());
  const std::string profile = dir + "/chromium-profile";
  const std::string command = absl::StrCat(
      "timeout 120 ", chromium, " --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking",
      " --disable-component-update --disable-sync --user-data-dir=", profile, " --screenshot=", png_path,
      " --window-size=760,500 file://", svg_path, " > ", dir, "/chromium.log 2>&1");
  const int rc = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << command << " (see " << dir << "/chromium.log)";
  Image image;
  ASSERT_TRUE(ReadPng(png_path, &image)) << png_path;
  ASSERT_EQ(image.width, 760);
  ASSERT_EQ(image.height, 500);
  int non_white = 0, dark = 0, blue = 0, red = 0, blue_min_x = image.width, blue_max_x = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* px = image.At(x, y);
      non_white += Near(px, 255, 255, 255, 8) ? 0 : 1;
      dark += Near(px, 0, 0, 0, 60) ? 1 : 0;
      red += Near(px, 0xd0, 0x30, 0x30, 40) ? 1 : 0;
      if (Near(px, 0x1f, 0x5f, 0xbf, 40)) {
        ++blue;
        blue_min_x = std::min(blue_min_x, x);
        blue_max_x = std::max(blue_max_x, x);
      }
    }
  }
  const int total = image.width * image.height;
  EXPECT_GT(non_white, total / 100) << "blank screenshot";
  EXPECT_LT(non_white, total / 2) << "the background is not white";
  EXPECT_GT(dark, 500) << "axes, ticks and text";
  EXPECT_GT(blue, 300) << "the first series";
  EXPECT_GT(red, 300) << "the second series";
  // The first series' line runs from x = 700 to 3400 of 4000 tokens/s: well over half the plot's width.
  EXPECT_GT(blue_max_x - blue_min_x, 350);
}

}  // namespace
}  // namespace llama::load
