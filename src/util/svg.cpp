#include "util/svg.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace sinklab {

namespace {

const char* kFont = "font-family=\"Helvetica, Arial, sans-serif\"";
const char* kAxisColor = "#444444";
const char* kGridColor = "#e3e3e3";

// Short decimal text for coordinates.
std::string num(double v) {
    if (std::fabs(v) < 5e-3) return "0";
    std::string s = fmt::format("{:.2f}", v);
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
}

struct Range {
    double lo = INFINITY, hi = -INFINITY;
    void add(double v) {
        if (!std::isfinite(v)) return;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    bool empty() const { return lo > hi; }
};

// An axis: data value -> pixel, and its ticks.
struct Axis {
    double lo, hi;        // domain (log10 of the values on a log axis)
    double pixel_lo, pixel_hi;
    bool log = false;
    std::vector<double> ticks;  // in value space
    double step = 1.0;          // tick step for labels (linear axes)

    double map(double v) const {
        const double t = log ? std::log10(v) : v;
        return pixel_lo + (t - lo) / (hi - lo) * (pixel_hi - pixel_lo);
    }
    bool visible(double v) const { return std::isfinite(v) && (!log || v > 0.0); }
};

// A linear axis covering [lo, hi]: extended to whole ticks, or exactly [lo, hi] when `exact` (a
// fixed end, finite, is kept as given either way). `integer`: ticks only at whole numbers.
Axis linear_axis(double lo, double hi, double fixed_lo, double fixed_hi, double pixel_lo, double pixel_hi,
                 size_t target, bool exact = false, bool integer = false) {
    if (std::isfinite(fixed_lo)) lo = fixed_lo;
    if (std::isfinite(fixed_hi)) hi = fixed_hi;
    Axis a;
    a.ticks = nice_ticks(lo, hi, target);
    a.step = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : 1.0;
    if (integer && a.step < 1.0) {
        a.step = 1.0;
        a.ticks.clear();
        for (double t = std::floor(lo); t <= std::ceil(hi); t += 1.0) a.ticks.push_back(t);
    }
    const bool use_data = exact && hi > lo;
    a.lo = std::isfinite(fixed_lo) ? fixed_lo : use_data ? lo : a.ticks.front();
    a.hi = std::isfinite(fixed_hi) ? fixed_hi : use_data ? hi : a.ticks.back();
    if (a.hi <= a.lo) a.hi = a.lo + 1.0;
    std::erase_if(a.ticks, [&](double t) { return t < a.lo - 1e-9 * a.step || t > a.hi + 1e-9 * a.step; });
    a.pixel_lo = pixel_lo;
    a.pixel_hi = pixel_hi;
    return a;
}

// A log10 axis over positive [lo, hi]: ticks at decades, or at 1-2-5 multiples over a short range.
Axis log_axis(double lo, double hi, double pixel_lo, double pixel_hi) {
    Axis a;
    a.log = true;
    if (!(lo > 0.0)) lo = hi > 0.0 ? hi / 10.0 : 1.0;
    if (!(hi > lo)) hi = lo * 10.0;
    const double dlo = std::floor(std::log10(lo)), dhi = std::ceil(std::log10(hi));
    const bool short_range = dhi - dlo < 2.0;
    a.lo = short_range ? std::log10(lo) : dlo;
    a.hi = short_range ? std::log10(hi) : dhi;
    if (a.hi - a.lo < 1e-9) a.hi = a.lo + 1.0;
    for (double d = dlo; d <= dhi; d += 1.0)
        for (double m : short_range ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
            const double v = m * std::pow(10.0, d);
            const double t = std::log10(v);
            if (t >= a.lo - 1e-9 && t <= a.hi + 1e-9) a.ticks.push_back(v);
        }
    a.pixel_lo = pixel_lo;
    a.pixel_hi = pixel_hi;
    return a;
}

std::string tick_label(const Axis& a, double v) {
    if (a.log) return fmt::format("{:g}", v);
    return format_tick(v, a.step);
}

// Series colors: explicit, else the palette by index.
std::string color_of(const Series& s, size_t index) { return s.color.empty() ? palette_color(index) : s.color; }

// Width needed by a legend of these names (12px text).
double legend_width(const std::vector<Series>& series) {
    size_t longest = 0;
    for (const Series& s : series) longest = std::max(longest, s.name.size());
    return std::min(220.0, 36.0 + 6.8 * double(longest));
}

void draw_legend(Svg& svg, const std::vector<Series>& series, double x, double y, double height, bool bars) {
    if (series.empty()) return;
    const double spacing = std::clamp(height / double(series.size()), 11.0, 18.0);
    const double font = spacing < 14.0 ? 10.0 : 12.0;
    for (size_t i = 0; i < series.size(); i++) {
        const double cy = y + 8.0 + spacing * double(i);
        if (cy > y + height + 40.0) break;  // no room left
        const std::string color = color_of(series[i], i);
        if (bars) svg.rect(x, cy - 5.0, 16.0, 10.0, color);
        else svg.line(x, cy, x + 18.0, cy, color, 2.0, series[i].dashed ? "stroke-dasharray=\"5,3\"" : "");
        svg.text(x + 24.0, cy + 4.0, series[i].name, font);
    }
}

// Frame, grid lines, ticks and tick labels of a plot area; axis labels; title.
void draw_axes(Svg& svg, const Axis& xa, const Axis& ya, double left, double top, double pw, double ph,
               const std::string& title, const std::string& x_label, const std::string& y_label, bool x_ticks,
               double region_x, double region_w, double region_y) {
    for (double t : ya.ticks) {
        const double py = ya.map(t);
        svg.line(left, py, left + pw, py, kGridColor);
        svg.line(left - 4.0, py, left, py, kAxisColor);
        svg.text(left - 7.0, py + 4.0, tick_label(ya, t), 11.0, "end");
    }
    if (x_ticks)
        for (double t : xa.ticks) {
            const double px = xa.map(t);
            svg.line(px, top, px, top + ph, kGridColor);
            svg.line(px, top + ph, px, top + ph + 4.0, kAxisColor);
            svg.text(px, top + ph + 17.0, tick_label(xa, t), 11.0, "middle");
        }
    svg.rect(left, top, pw, ph, "none", fmt::format("stroke=\"{}\" stroke-width=\"1\"", kAxisColor));
    if (!title.empty()) svg.text(region_x + region_w / 2.0, region_y + 20.0, title, 15.0, "middle", 0.0, "font-weight=\"bold\"");
    if (!x_label.empty()) svg.text(left + pw / 2.0, top + ph + 36.0, x_label, 12.0, "middle");
    if (!y_label.empty()) svg.text(region_x + 14.0, top + ph / 2.0, y_label, 12.0, "middle", -90.0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::vector<double> nice_ticks(double lo, double hi, size_t target) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0.0, hi = 1.0;
    if (hi < lo) std::swap(lo, hi);
    if (hi - lo < 1e-12 * std::max(1.0, std::fabs(lo))) {
        const double pad = lo == 0.0 ? 1.0 : std::fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    }
    target = std::max<size_t>(target, 2);
    const double raw = (hi - lo) / double(target - 1);
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude * 10.0;
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    // ticks are whole multiples n * step; computed as n * (step / magnitude) / (1 / magnitude) for small
    // magnitudes, so that 0.6 comes out as 0.6 and not 3 * 0.2 = 0.6000000000000001
    const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
    const double mantissa = step / magnitude, inverse = std::round(1.0 / magnitude);
    std::vector<double> ticks;
    for (double n = first; n <= last + 1e-9 && ticks.size() <= 1000; n += 1.0) {
        const double t = magnitude < 1.0 ? n * mantissa / inverse : n * step;
        ticks.push_back(n == 0.0 ? 0.0 : t);
    }
    return ticks;
}

std::string format_tick(double value, double step) {
    if (value == 0.0) return "0";
    const double a = std::fabs(value);
    if (a >= 1e6 || a < 1e-4) return fmt::format("{:.3g}", value);
    int decimals = 0;
    while (decimals < 6) {
        const double scaled = std::fabs(step) * std::pow(10.0, decimals);
        if (std::fabs(scaled - std::round(scaled)) < 1e-6 * std::max(1.0, scaled)) break;
        decimals++;
    }
    return fmt::format("{:.{}f}", value, decimals);
}

std::string palette_color(size_t index) {
    static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return colors[index % 10];
}

std::string viridis_color(double t) {
    // viridis sampled at 9 points, linearly interpolated
    static const double stops[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                       {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
    if (!std::isfinite(t)) t = 0.0;
    t = std::clamp(t, 0.0, 1.0) * 8.0;
    const size_t i = std::min<size_t>(size_t(t), 7);
    const double f = t - double(i);
    int rgb[3];
    for (size_t c = 0; c < 3; c++) rgb[c] = int(std::lround(stops[i][c] * (1.0 - f) + stops[i + 1][c] * f));
    return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

std::string xml_escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------

Svg::Svg(double width, double height) : width_(width), height_(height) {}

void Svg::rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra) {
    body_ += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}{}/>\n", num(x), num(y),
                         num(w), num(h), fill, extra.empty() ? "" : " ", extra);
}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
               const std::string& extra) {
    body_ += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{}{}/>\n",
                         num(x1), num(y1), num(x2), num(y2), stroke, num(width), extra.empty() ? "" : " ", extra);
}

void Svg::polyline(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& stroke,
                   double width, bool dashed) {
    if (xs.empty()) return;
    std::string points;
    for (size_t i = 0; i < xs.size() && i < ys.size(); i++) {
        if (i) points += ' ';
        points += num(xs[i]) + "," + num(ys[i]);
    }
    body_ += fmt::format(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\"{}/>\n", points,
        stroke, num(width), dashed ? " stroke-dasharray=\"6,4\"" : "");
}

void Svg::circle(double cx, double cy, double r, const std::string& fill) {
    body_ += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"/>\n", num(cx), num(cy), num(r), fill);
}

void Svg::text(double x, double y, const std::string& content, double size, const std::string& anchor, double rotate,
               const std::string& extra) {
    std::string transform;
    if (rotate != 0.0) transform = fmt::format(" transform=\"rotate({} {} {})\"", num(rotate), num(x), num(y));
    body_ += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{}\"{}{}{}>{}</text>\n", num(x),
                         num(y), num(size), anchor, transform, extra.empty() ? "" : " ", extra, xml_escape(content));
}

void Svg::raw(const std::string& markup) { body_ += markup; }

std::string Svg::unique_id(const std::string& prefix) { return fmt::format("{}{}", prefix, next_id_++); }

std::string Svg::str() const {
    return fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" {} fill=\"#222222\">\n"
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n{}</svg>\n",
        num(width_), num(height_), num(width_), num(height_), kFont, num(width_), num(height_), body_);
}

// ---------------------------------------------------------------------------------------------
// Line chart

void draw_line_chart(Svg& svg, const LineChart& chart, double x, double y, double w, double h) {
    const bool legend = chart.series.size() > 1 || (chart.series.size() == 1 && !chart.series[0].name.empty());
    const double legend_w = legend ? legend_width(chart.series) : 0.0;
    const double left = x + 70.0, top = y + 34.0;
    const double pw = std::max(40.0, w - 70.0 - 18.0 - legend_w), ph = std::max(40.0, h - 34.0 - 50.0);

    Range xr, yr;
    for (const Series& s : chart.series)
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++) {
            if (!std::isfinite(s.y[i]) || (chart.log_y && s.y[i] <= 0.0)) continue;
            xr.add(s.x[i]);
            yr.add(s.y[i]);
        }
    if (xr.empty()) xr = {0.0, 1.0};
    if (yr.empty()) yr = chart.log_y ? Range{1.0, 10.0} : Range{0.0, 1.0};
    const Axis xa = linear_axis(xr.lo, xr.hi, chart.x_min, chart.x_max, left, left + pw, 7, true, chart.x_integer);
    const Axis ya = chart.log_y
                        ? log_axis(std::isfinite(chart.y_min) ? chart.y_min : yr.lo,
                                   std::isfinite(chart.y_max) ? chart.y_max : yr.hi, top + ph, top)
                        : linear_axis(yr.lo, yr.hi, chart.y_min, chart.y_max, top + ph, top, 6);
    draw_axes(svg, xa, ya, left, top, pw, ph, chart.title, chart.x_label, chart.y_label, true, x, w, y);

    const std::string clip = svg.unique_id("clip");
    svg.raw(fmt::format("<clipPath id=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath>\n", clip,
                        num(left), num(top - 2.0), num(pw), num(ph + 4.0)));
    svg.raw(fmt::format("<g clip-path=\"url(#{})\">\n", clip));
    for (size_t si = 0; si < chart.series.size(); si++) {
        const Series& s = chart.series[si];
        const std::string color = color_of(s, si);
        std::vector<double> px, py;
        auto flush = [&] {
            if (px.size() == 1) svg.circle(px[0], py[0], 2.5, color);
            else svg.polyline(px, py, color, 2.0, s.dashed);
            px.clear();
            py.clear();
        };
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++) {
            if (!ya.visible(s.y[i]) || !std::isfinite(s.x[i])) {
                flush();
                continue;
            }
            px.push_back(xa.map(s.x[i]));
            py.push_back(ya.map(s.y[i]));
            if (s.markers) svg.circle(px.back(), py.back(), 2.8, color);
        }
        flush();
    }
    svg.raw("</g>\n");
    if (legend) draw_legend(svg, chart.series, left + pw + 14.0, top, ph, false);
}

std::string line_chart_svg(const LineChart& chart, double width, double height) {
    Svg svg(width, height);
    draw_line_chart(svg, chart, 0.0, 0.0, width, height);
    return svg.str();
}

std::string line_charts_svg(const std::vector<LineChart>& charts, size_t columns, const std::string& title,
                            double panel_w, double panel_h) {
    columns = std::max<size_t>(1, std::min(columns, std::max<size_t>(1, charts.size())));
    const size_t rows = (charts.size() + columns - 1) / columns;
    const double head = title.empty() ? 0.0 : 32.0;
    Svg svg(panel_w * double(columns), head + panel_h * double(std::max<size_t>(rows, 1)));
    if (!title.empty())
        svg.text(panel_w * double(columns) / 2.0, 22.0, title, 17.0, "middle", 0.0, "font-weight=\"bold\"");
    for (size_t i = 0; i < charts.size(); i++)
        draw_line_chart(svg, charts[i], panel_w * double(i % columns), head + panel_h * double(i / columns), panel_w,
                        panel_h);
    return svg.str();
}

// ---------------------------------------------------------------------------------------------
// Bar chart

void draw_bar_chart(Svg& svg, const BarChart& chart, double x, double y, double w, double h) {
    const bool legend = chart.series.size() > 1;
    const double legend_w = legend ? legend_width(chart.series) : 0.0;
    const double left = x + 70.0, top = y + 34.0;
    const double pw = std::max(40.0, w - 70.0 - 18.0 - legend_w), ph = std::max(40.0, h - 34.0 - 50.0);
    Range yr{0.0, 0.0};
    for (const Series& s : chart.series)
        for (double v : s.y) yr.add(v);
    if (yr.hi <= 0.0) yr.hi = 1.0;
    const Axis ya = linear_axis(std::min(0.0, yr.lo), yr.hi, NAN, chart.y_max, top + ph, top, 6);
    const size_t n_cat = std::max<size_t>(1, chart.categories.size());
    const Axis xa = linear_axis(0.0, double(n_cat), 0.0, double(n_cat), left, left + pw, 2);
    draw_axes(svg, xa, ya, left, top, pw, ph, chart.title, chart.x_label, chart.y_label, false, x, w, y);

    const double group_w = pw / double(n_cat);
    const size_t n_series = std::max<size_t>(1, chart.series.size());
    const double bar_w = group_w * 0.8 / double(n_series);
    const double label_every = std::ceil(double(n_cat) * 28.0 / pw);  // skip labels that would overlap
    for (size_t c = 0; c < chart.categories.size(); c++) {
        const double gx = left + group_w * double(c);
        if (c % size_t(std::max(1.0, label_every)) == 0)
            svg.text(gx + group_w / 2.0, top + ph + 17.0, chart.categories[c], 11.0, "middle");
        for (size_t s = 0; s < chart.series.size(); s++) {
            if (c >= chart.series[s].y.size() || !std::isfinite(chart.series[s].y[c])) continue;
            const double v = std::min(chart.series[s].y[c], ya.hi);
            const double y0 = ya.map(0.0), y1 = ya.map(v);
            svg.rect(gx + group_w * 0.1 + bar_w * double(s), std::min(y0, y1), bar_w, std::fabs(y0 - y1),
                     color_of(chart.series[s], s), "class=\"bar\"");
        }
    }
    if (legend) draw_legend(svg, chart.series, left + pw + 14.0, top, ph, true);
}

std::string bar_chart_svg(const BarChart& chart, double width, double height) {
    Svg svg(width, height);
    draw_bar_chart(svg, chart, 0.0, 0.0, width, height);
    return svg.str();
}

// ---------------------------------------------------------------------------------------------
// Heat maps

std::string heatmap_grid_svg(const HeatMapGrid& grid) {
    const size_t n = grid.maps.size();
    const size_t gcols = std::max<size_t>(1, std::min(grid.grid_cols, std::max<size_t>(n, 1)));
    const size_t grows = (n + gcols - 1) / gcols;
    size_t map_rows = 1, map_cols = 1;
    bool map_labels = false;
    for (const HeatMap& m : grid.maps) {
        map_rows = std::max(map_rows, m.rows);
        map_cols = std::max(map_cols, m.cols);
        map_labels = map_labels || !m.label.empty();
    }
    const double cell = grid.cell;
    const double panel_w = double(map_cols) * cell, panel_h = double(map_rows) * cell;
    const double gap = 8.0, label_h = map_labels ? 13.0 : 0.0;
    const double left = grid.row_labels.empty() ? 14.0 : 66.0;
    const double top = 44.0 + (grid.subtitle.empty() ? 0.0 : 16.0) + (grid.col_labels.empty() ? 0.0 : 16.0);
    const double grid_w = double(gcols) * (panel_w + gap) - gap;
    const double grid_h = double(grows) * (panel_h + gap + label_h) - gap;
    const double bar_x = left + grid_w + 24.0, bar_w = 14.0, bar_h = std::clamp(grid_h, 60.0, 320.0);
    // wide enough for the title lines too (about 8.5 and 6.5 pixels per character)
    const double width = std::max({bar_x + bar_w + 64.0, 360.0, 8.5 * double(grid.title.size()) + 30.0,
                                   6.5 * double(grid.subtitle.size()) + 30.0});
    const double height = top + std::max(grid_h, bar_h) + 20.0;

    Svg svg(width, height);
    if (!grid.title.empty()) svg.text(width / 2.0, 24.0, grid.title, 15.0, "middle", 0.0, "font-weight=\"bold\"");
    if (!grid.subtitle.empty()) svg.text(width / 2.0, 42.0, grid.subtitle, 11.0, "middle");
    for (size_t c = 0; c < grid.col_labels.size() && c < gcols; c++)
        svg.text(left + double(c) * (panel_w + gap) + panel_w / 2.0, top - 8.0, grid.col_labels[c], 11.0, "middle");
    for (size_t r = 0; r < grid.row_labels.size() && r < grows; r++)
        svg.text(left - 8.0, top + double(r) * (panel_h + gap + label_h) + label_h + panel_h / 2.0 + 4.0,
                 grid.row_labels[r], 11.0, "end");

    const double span = grid.v_max > grid.v_min ? grid.v_max - grid.v_min : 1.0;
    auto position = [&](double v) {
        const double t = std::clamp((v - grid.v_min) / span, 0.0, 1.0);
        return grid.gamma == 1.0 ? t : std::pow(t, grid.gamma);
    };
    for (size_t m = 0; m < n; m++) {
        const HeatMap& map = grid.maps[m];
        const double px = left + double(m % gcols) * (panel_w + gap);
        const double py = top + double(m / gcols) * (panel_h + gap + label_h) + label_h;
        if (!map.label.empty()) svg.text(px + panel_w / 2.0, py - 3.0, map.label, 9.0, "middle");
        svg.rect(px, py, panel_w, panel_h, "#f0f0f0");  // masked cells show this background
        for (size_t i = 0; i < map.rows; i++)
            for (size_t j = 0; j < map.cols; j++) {
                const double v = map.values[i * map.cols + j];
                if (!std::isfinite(v)) continue;
                svg.rect(px + double(j) * cell, py + double(i) * cell, cell, cell, viridis_color(position(v)),
                         "class=\"c\"");
            }
        svg.rect(px, py, panel_w, panel_h, "none", "stroke=\"#999999\" stroke-width=\"0.5\"");
    }

    // the color scale: a gradient from v_min (bottom) to v_max (top), ticks in value space
    const std::string gradient = svg.unique_id("scale");
    std::string stops;
    for (size_t i = 0; i <= 16; i++) {
        const double t = double(i) / 16.0;
        stops += fmt::format("<stop offset=\"{}\" stop-color=\"{}\"/>", num(t), viridis_color(1.0 - t));
    }
    svg.raw(fmt::format("<defs><linearGradient id=\"{}\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">{}</linearGradient></defs>\n",
                        gradient, stops));
    svg.rect(bar_x, top, bar_w, bar_h, fmt::format("url(#{})", gradient), "stroke=\"#666666\" stroke-width=\"0.5\"");
    const std::vector<double> ticks = nice_ticks(grid.v_min, grid.v_max, 6);
    const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1.0;
    for (double t : ticks) {
        if (t < grid.v_min - 1e-12 || t > grid.v_max + 1e-12) continue;
        const double ty = top + bar_h * (1.0 - position(t));
        svg.line(bar_x + bar_w, ty, bar_x + bar_w + 4.0, ty, kAxisColor);
        svg.text(bar_x + bar_w + 7.0, ty + 4.0, format_tick(t, step), 10.0);
    }
    if (!grid.scale_label.empty())
        svg.text(bar_x + bar_w + 44.0, top + bar_h / 2.0, grid.scale_label, 10.0, "middle", 90.0);
    return svg.str();
}

}  // namespace sinklab
