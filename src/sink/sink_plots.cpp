#include "sink/sink_plots.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "train/run_reader.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/svg.h"

namespace sinklab {

namespace {

std::string join_path(const std::string& dir, const std::string& name) {
    return (std::filesystem::path(dir) / name).string();
}

std::string probe_text(const SinkReport& r) {
    return fmt::format("{} {} probes x {} tokens, eps {}{}", r.probe.count, r.probe.kind, r.probe.length, r.options.eps,
                       r.options.proxy ? ", proxy scores" : "");
}

}  // namespace

std::vector<std::string> write_training_plots(const std::vector<Json>& metrics, const std::string& out_dir,
                                              const std::string& title) {
    make_dirs(out_dir);
    std::vector<std::string> written;

    LineChart loss;
    loss.title = title.empty() ? "loss" : title + ": loss";
    loss.x_label = "step";
    loss.y_label = "cross entropy (nats/token)";
    const MetricSeries train = metric_series(metrics, "loss");
    const MetricSeries val = metric_series(metrics, "val_loss");
    loss.series.push_back({"train", train.step, train.value, palette_color(0)});
    if (!val.step.empty()) loss.series.push_back({"val", val.step, val.value, palette_color(1), false, true});
    written.push_back(join_path(out_dir, "loss.svg"));
    write_file_atomic(written.back(), line_chart_svg(loss));

    LineChart sink;
    sink.title = title.empty() ? "Sink_k over training" : title + ": Sink_k over training";
    sink.x_label = "step";
    sink.y_label = "Sink_k (% of heads)";
    sink.y_min = 0.0;
    for (size_t k = 0; k < 3; k++) {
        const MetricSeries s = metric_list_series(metrics, "sink_k", k);
        if (!s.step.empty()) sink.series.push_back({fmt::format("Sink_{}", k + 1), s.step, s.value, palette_color(k), false, true});
    }
    const MetricSeries star = metric_series(metrics, "sink_star");
    if (!star.step.empty()) sink.series.push_back({"Sink* (extra slot)", star.step, star.value, "#555555", true, true});
    if (!sink.series.empty()) {
        written.push_back(join_path(out_dir, "sink_curve.svg"));
        write_file_atomic(written.back(), line_chart_svg(sink));
    }
    return written;
}

std::string attention_maps_svg(const SinkReport& r, const std::string& title, size_t max_tokens) {
    HeatMapGrid grid;
    const size_t Tm = r.map_size, n = std::min(Tm, std::max<size_t>(max_tokens, 1));
    grid.title = fmt::format("{}mean attention per layer and head", title.empty() ? "" : title + ": ");
    grid.subtitle = fmt::format("{}; first {} {} (rows: queries, columns: keys){}", probe_text(r), n,
                                r.options.extra_slot ? "slots" : "tokens",
                                r.options.extra_slot ? "; slot 0 is the extra key" : "");
    grid.grid_cols = r.n_heads;
    grid.cell = std::clamp(160.0 / double(n), 2.0, 8.0);
    grid.gamma = 0.5;
    grid.scale_label = "weight (sqrt scale)";
    for (size_t h = 0; h < r.n_heads; h++) grid.col_labels.push_back(fmt::format("head {}", h));
    for (size_t l = 0; l < r.n_layers; l++) grid.row_labels.push_back(fmt::format("layer {}", l));
    for (size_t l = 0; l < r.n_layers; l++)
        for (size_t h = 0; h < r.n_heads; h++) {
            HeatMap map;
            map.rows = n;
            map.cols = n;
            map.values.assign(n * n, NAN);
            for (size_t i = 0; i < n; i++) {
                if (r.options.extra_slot && i == 0) continue;  // the slot's own row is not a query
                for (size_t j = 0; j <= i; j++) map.values[i * n + j] = r.map_at(l, h, i, j);
            }
            grid.maps.push_back(std::move(map));
        }
    return heatmap_grid_svg(grid);
}

std::string sink_per_layer_svg(const SinkReport& r, const std::string& title) {
    BarChart chart;
    chart.title = fmt::format("{}Sink_k per layer ({})", title.empty() ? "" : title + ": ", probe_text(r));
    chart.x_label = "layer";
    chart.y_label = "sink heads (% of the layer's heads)";
    for (size_t l = 0; l < r.n_layers; l++) chart.categories.push_back(fmt::format("{}", l));
    if (r.options.extra_slot) chart.series.push_back({"Sink*", {}, r.sink_star_per_layer, "#555555"});
    for (size_t k = 0; k < std::min<size_t>(3, r.n_k); k++) {
        Series s{fmt::format("Sink_{}", k + 1), {}, {}, palette_color(k)};
        for (size_t l = 0; l < r.n_layers; l++) s.y.push_back(r.per_layer[l][k]);
        chart.series.push_back(s);
    }
    chart.y_max = 100.0;
    return bar_chart_svg(chart, 760, 420);
}

std::string norms_svg(const SinkReport& r, const std::string& title) {
    const NormStats& n = r.norms;
    const size_t L = r.n_layers;
    std::vector<LineChart> charts;

    LineChart resid;
    resid.title = "residual norm ||h_t|| by position";
    resid.x_label = "position t";
    resid.y_label = "L2 norm";
    resid.log_y = true;
    resid.x_integer = true;
    for (size_t l = 0; l < n.resid.size(); l++) {
        Series s;
        s.name = l == 0 ? "l=0 (embedding)" : l == L ? fmt::format("l={} (last block)", l) : fmt::format("l={}", l);
        for (size_t t = 0; t < n.resid[l].size(); t++) {
            s.x.push_back(double(t + 1));
            s.y.push_back(n.resid[l][t]);
        }
        s.color = viridis_color(L ? 0.9 * double(l) / double(L) : 0.0);
        resid.series.push_back(s);
    }
    charts.push_back(resid);

    LineChart ratio;
    ratio.title = "massive activation ||h_1|| / mean_{t>1} ||h_t||";
    ratio.x_label = "residual stream l (0 = embedding, L = last block's output)";
    ratio.y_label = "ratio";
    ratio.y_min = 0.0;
    ratio.x_integer = true;
    Series rs{"", {}, n.massive_ratio, palette_color(1), false, true};
    for (size_t l = 0; l < n.massive_ratio.size(); l++) rs.x.push_back(double(l));
    ratio.series.push_back(rs);
    charts.push_back(ratio);

    LineChart qk;
    qk.title = "first key: ||k_1|| and mean ||q_t||, ||k_t|| (t > 1)";
    qk.x_label = "layer";
    qk.y_label = "L2 norm per head";
    qk.y_min = 0.0;
    qk.x_integer = true;
    Series k1{"||k_1||", {}, n.k1_norm, palette_color(1), false, true};
    Series qm{"mean ||q_t||", {}, {}, palette_color(0), false, true};
    Series km{"mean ||k_t||", {}, {}, palette_color(2), true, true};
    Series cs{"mean cos(q_t, k_1)", {}, {}, palette_color(3), false, true};
    for (size_t l = 0; l < L; l++) {
        k1.x.push_back(double(l));
        qm.x.push_back(double(l));
        km.x.push_back(double(l));
        cs.x.push_back(double(l));
        double q_sum = 0.0, k_sum = 0.0, c_sum = 0.0;
        const size_t T = n.q_norm[l].size();
        for (size_t t = 1; t < T; t++) {
            q_sum += n.q_norm[l][t];
            k_sum += n.key[l][t];
            c_sum += n.cos_q_k1[l][t];
        }
        const double count = T > 1 ? double(T - 1) : 1.0;
        qm.y.push_back(q_sum / count);
        km.y.push_back(k_sum / count);
        cs.y.push_back(c_sum / count);
    }
    qk.series = {k1, qm, km};
    charts.push_back(qk);

    LineChart cosine;
    cosine.title = "cos(q_t, k_1), mean over t > 1";
    cosine.x_label = "layer";
    cosine.y_label = "cosine";
    cosine.y_min = -1.0;
    cosine.y_max = 1.0;
    cosine.x_integer = true;
    cosine.series = {cs};
    charts.push_back(cosine);

    return line_charts_svg(charts, 2,
                           fmt::format("{}norms ({})", title.empty() ? "" : title + ": ", probe_text(r)), 600, 400);
}

std::vector<std::string> write_report_plots(const SinkReport& report, const std::string& out_dir,
                                            const std::string& title, size_t max_tokens) {
    make_dirs(out_dir);
    std::vector<std::string> written;
    written.push_back(join_path(out_dir, "sink_per_layer.svg"));
    write_file_atomic(written.back(), sink_per_layer_svg(report, title));
    if (report.has_norms) {
        written.push_back(join_path(out_dir, "norms.svg"));
        write_file_atomic(written.back(), norms_svg(report, title));
    }
    if (!report.mean_maps.empty()) {
        written.push_back(join_path(out_dir, "attention_maps.svg"));
        write_file_atomic(written.back(), attention_maps_svg(report, title, max_tokens));
    }
    return written;
}

std::vector<std::string> write_comparison_plots(const std::vector<std::string>& run_dirs, const std::string& out_dir,
                                                const std::string& color_key, size_t position) {
    make_dirs(out_dir);
    if (position < 1 || position > 10) fail("compare: the sink position {} is not in 1..10", position);
    const size_t k = position - 1;  // index into sink_k / alpha_k
    LineChart loss{"loss per run", "step", "cross entropy (nats/token)", {}};
    LineChart sink{fmt::format("Sink_{} over training", position), "step", fmt::format("Sink_{} (% of heads)", position), {}};
    LineChart alpha{fmt::format("mean alpha_{} over training (attention on position {})", position, position), "step",
                    fmt::format("alpha_{}", position), {}};
    LineChart val{"validation loss", "step", "cross entropy (nats/token)", {}};
    LineChart first_norm{"first token's residual norm ||h_1|| per layer", "residual stream l (0 = embedding)", "L2 norm", {}};
    LineChart ratio{"massive activation ||h_1|| / mean_{t>1} ||h_t||", "residual stream l (0 = embedding)", "ratio", {}};
    sink.y_min = 0.0;
    alpha.y_min = 0.0;
    ratio.y_min = 0.0;
    first_norm.x_integer = ratio.x_integer = true;
    std::vector<std::string> color_values;  // one colour per value of color_key, else per run
    std::string probe;
    size_t probe_length = 0;
    // Legend names: the run directories without the folder they all share ("runs/h/seed1/softmax",
    // "runs/h/seed1/sigmoid" -> "seed1/softmax", "seed1/sigmoid").
    std::vector<std::string> names;
    for (const std::string& dir : run_dirs) {
        std::filesystem::path path = std::filesystem::path(dir).lexically_normal();
        if (path.filename().empty()) path = path.parent_path();
        names.push_back(path.string());
    }
    size_t shared = names.size() > 1 ? names[0].rfind('/') + 1 : 0;  // npos + 1 = 0: no folder
    for (const std::string& name : names)
        while (shared > 0 && name.compare(0, shared, names[0], 0, shared) != 0)
            shared = names[0].rfind('/', shared - 2) + 1;
    for (size_t i = 0; i < run_dirs.size(); i++) {
        const RunData run = read_run(run_dirs[i]);
        const std::string name = names[i].substr(shared);
        size_t color = i;
        if (!color_key.empty()) {
            const auto flat = flatten_json(run.config);
            const auto it = flat.find(color_key);
            const std::string value = it == flat.end() ? "" : it->second;
            color = size_t(std::find(color_values.begin(), color_values.end(), value) - color_values.begin());
            if (color == color_values.size()) color_values.push_back(value);
        }
        const MetricSeries val_loss = metric_series(run.metrics, "val_loss");
        const MetricSeries train = metric_series(run.metrics, "loss");
        if (!val_loss.step.empty()) {
            loss.series.push_back({name + " val", val_loss.step, val_loss.value, palette_color(color), false, true});
            loss.series.push_back({name + " train", train.step, train.value, palette_color(color), true});
            val.series.push_back({name, val_loss.step, val_loss.value, palette_color(color), false, true});
        } else {
            loss.series.push_back({name + " train", train.step, train.value, palette_color(color)});
        }
        const MetricSeries sink_k = metric_list_series(run.metrics, "sink_k", k);
        if (!sink_k.step.empty()) sink.series.push_back({name, sink_k.step, sink_k.value, palette_color(color), false, true});
        const MetricSeries alpha_k = metric_list_series(run.metrics, "alpha_k", k);
        if (!alpha_k.step.empty()) alpha.series.push_back({name, alpha_k.step, alpha_k.value, palette_color(color), false, true});
        if (run.has_sink_report && run.sink_report.contains("norms")) {
            const SinkReport report =
                sink_report_from_json(run.sink_report, (std::filesystem::path(run_dirs[i]) / "sink.json").string());
            if (!report.has_norms) continue;
            Series h1{name, {}, {}, palette_color(color), false, true};
            Series rs{name, {}, report.norms.massive_ratio, palette_color(color), false, true};
            for (size_t l = 0; l < report.norms.resid.size(); l++) {
                h1.x.push_back(double(l));
                h1.y.push_back(report.norms.resid[l].empty() ? NAN : report.norms.resid[l][0]);
            }
            for (size_t l = 0; l < rs.y.size(); l++) rs.x.push_back(double(l));
            first_norm.series.push_back(h1);
            ratio.series.push_back(rs);
            probe = fmt::format("{} {} probes x {} tokens", report.probe.count, report.probe.kind, report.probe.length);
            probe_length = report.probe.length;
        }
    }
    if (probe_length >= position && !alpha.series.empty()) {
        // uniform causal attention: query i (1-based) gives key `position` 1/i when i >= position;
        // alpha_k averages over the queries that see position k
        double uniform = 0.0;
        for (size_t i = position; i <= probe_length; i++) uniform += 1.0 / double(i);
        uniform /= double(probe_length - position + 1);
        Series flat{fmt::format("uniform over {} tokens", probe_length), {}, {}, "#888888", true};
        for (double step : {alpha.series[0].x.front(), alpha.series[0].x.back()}) {
            flat.x.push_back(step);
            flat.y.push_back(uniform);
        }
        alpha.series.push_back(flat);
    }
    std::vector<std::string> written = {join_path(out_dir, "compare_loss.svg")};
    write_file_atomic(written.back(), line_chart_svg(loss, 900, 460));
    if (!sink.series.empty()) {
        std::vector<LineChart> panels = {sink};
        if (!alpha.series.empty()) panels.push_back(alpha);
        if (!val.series.empty()) panels.push_back(val);
        written.push_back(join_path(out_dir, "compare_sink.svg"));
        write_file_atomic(written.back(),
                          line_charts_svg(panels, panels.size(),
                                          fmt::format("the sink at position {} over training, beside the validation loss", position)));
    }
    if (!ratio.series.empty()) {
        written.push_back(join_path(out_dir, "compare_norms.svg"));
        write_file_atomic(written.back(), line_charts_svg({first_norm, ratio}, 2,
                                                          fmt::format("the first token's residual stream at the end ({})", probe)));
    }
    return written;
}

std::vector<std::string> write_run_plots(const std::string& run_dir, const std::string& out_dir) {
    const RunData run = read_run(run_dir);
    std::filesystem::path name = std::filesystem::path(run_dir).lexically_normal();
    if (name.filename().empty()) name = name.parent_path();  // "runs/a/" -> "runs/a"
    const std::string title = name.filename().string();
    std::vector<std::string> written = write_training_plots(run.metrics, out_dir, title);
    if (run.has_sink_report) {
        const SinkReport report =
            sink_report_from_json(run.sink_report, (std::filesystem::path(run_dir) / "sink.json").string());
        for (const std::string& path : write_report_plots(report, out_dir, title)) written.push_back(path);
    }
    return written;
}

}  // namespace sinklab
