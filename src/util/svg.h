// A tiny SVG writer, so that the project draws its own pictures without a plotting dependency:
// line charts (several series, axes, ticks, labels, legend), grouped bar charts, and grids of heat
// maps with a color scale. A browser opens the files; nothing is interactive.
//
//   LineChart chart{.title = "loss", .x_label = "step", .y_label = "loss"};
//   chart.series.push_back({.name = "train", .x = steps, .y = losses});
//   write_file_atomic("loss.svg", line_chart_svg(chart));
#pragma once
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

namespace sinklab {

// One line (or one set of bars). NaN y values break the line.
struct Series {
    std::string name;
    std::vector<double> x, y;
    std::string color;     // empty: the chart's palette picks one
    bool dashed = false;
    bool markers = false;  // a dot at every point
};

struct LineChart {
    std::string title, x_label, y_label;
    std::vector<Series> series;
    bool log_y = false;  // log10 axis; values <= 0 are skipped
    bool x_integer = false;  // x ticks only at whole numbers (layers, positions)
    double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;  // NaN: from the data
};

// Groups of bars: series[s].y[c] is the bar of series s in category c (x is unused).
struct BarChart {
    std::string title, x_label, y_label;
    std::vector<std::string> categories;
    std::vector<Series> series;
    double y_max = NAN;  // NaN: from the data (the axis always starts at 0)
};

// One heat map: rows x cols values, row-major; NaN cells are not drawn (masked).
struct HeatMap {
    std::string label;
    size_t rows = 0, cols = 0;
    std::vector<double> values;
};

// A grid of equally sized heat maps (e.g. one per layer and head) sharing one color scale.
struct HeatMapGrid {
    std::string title;
    std::string subtitle;                 // a smaller second line under the title
    std::vector<HeatMap> maps;            // laid out row by row, grid_cols per row
    size_t grid_cols = 1;
    std::vector<std::string> row_labels;  // optional, one per grid row (e.g. "layer 3")
    std::vector<std::string> col_labels;  // optional, one per grid column (e.g. "head 1")
    double v_min = 0.0, v_max = 1.0;
    double gamma = 1.0;                   // color position = ((v - v_min) / (v_max - v_min))^gamma
    std::string scale_label;
    double cell = 4.0;                    // pixels per cell
};

// A document under construction: shapes in user units (pixels), closed by str().
class Svg {
public:
    Svg(double width, double height);
    void rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra = "");
    void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1.0,
              const std::string& extra = "");
    // A polyline through (xs[i], ys[i]).
    void polyline(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& stroke,
                  double width, bool dashed);
    void circle(double cx, double cy, double r, const std::string& fill);
    // anchor: "start", "middle" or "end"; rotate: degrees about (x, y).
    void text(double x, double y, const std::string& content, double size = 12.0, const std::string& anchor = "start",
              double rotate = 0.0, const std::string& extra = "");
    void raw(const std::string& markup);  // verbatim (defs, groups)
    std::string unique_id(const std::string& prefix);  // for clip paths and gradients
    std::string str() const;              // the whole document, closed

private:
    double width_, height_;
    std::string body_;
    size_t next_id_ = 0;
};

// Drawing into a region (x, y, w, h) of a document, so that several charts can share one file.
void draw_line_chart(Svg& svg, const LineChart& chart, double x, double y, double w, double h);
void draw_bar_chart(Svg& svg, const BarChart& chart, double x, double y, double w, double h);

std::string line_chart_svg(const LineChart& chart, double width = 760, double height = 440);
std::string bar_chart_svg(const BarChart& chart, double width = 760, double height = 440);
// Several line charts in a grid of `columns`, each panel_w x panel_h, under one title.
std::string line_charts_svg(const std::vector<LineChart>& charts, size_t columns, const std::string& title,
                            double panel_w = 560, double panel_h = 380);
std::string heatmap_grid_svg(const HeatMapGrid& grid);

// Helpers, exposed for tests and for callers that build their own figures.
std::vector<double> nice_ticks(double lo, double hi, size_t target = 6);  // ticks covering [lo, hi]
std::string format_tick(double value, double step);                      // "0.25", "2000", "1e-05"
std::string palette_color(size_t index);                                 // categorical, 10 colors
std::string viridis_color(double t);                                     // t in [0, 1]
std::string xml_escape(const std::string& text);

}  // namespace sinklab
