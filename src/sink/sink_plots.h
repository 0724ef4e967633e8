// The pictures of a run (SVG, drawn by svg.h):
//   from metrics.jsonl:  loss.svg        train loss and val loss over steps
//                        sink_curve.svg  Sink_1..3 (and Sink* when logged) over steps
//   from a sink report:  attention_maps.svg  mean probe attention per layer (rows) and head (columns)
//                        sink_per_layer.svg  Sink_1..3 per layer, bars
//                        norms.svg           residual norm per position for every layer, the
//                                            massive-activation ratio per layer, ||q_t||, ||k_1||
//                                            and cos(q_t, k_1) per layer
#pragma once
#include <string>
#include <vector>

#include "sink/sink.h"
#include "util/json.h"

namespace sinklab {

// Writes loss.svg and sink_curve.svg into out_dir (created if needed); returns the paths written
// (sink_curve.svg only when some line has sink_k).
std::vector<std::string> write_training_plots(const std::vector<Json>& metrics, const std::string& out_dir,
                                              const std::string& title);

// Writes sink_per_layer.svg, norms.svg (when the report has norms) and attention_maps.svg (when it
// has mean maps; each cropped to the first max_tokens positions, the extra slot included) into
// out_dir; returns the paths written.
std::vector<std::string> write_report_plots(const SinkReport& report, const std::string& out_dir,
                                            const std::string& title, size_t max_tokens = 32);

// The three report pictures as SVG text (used by write_report_plots and by tests).
std::string attention_maps_svg(const SinkReport& report, const std::string& title, size_t max_tokens = 32);
std::string sink_per_layer_svg(const SinkReport& report, const std::string& title);
std::string norms_svg(const SinkReport& report, const std::string& title);

// Several runs on shared axes: compare_loss.svg (train and val loss per run); compare_sink.svg
// (three panels: Sink_k, mean alpha_k at k = position (1-based) and the validation loss over steps,
// when sinks were logged);
// compare_norms.svg (the first token's residual norm and its massive-activation ratio per layer,
// from the runs' sink.json). With color_key (a flattened config key such as "model.attention")
// runs with the same value share a colour, else each run has its own. Returns the paths written.
std::vector<std::string> write_comparison_plots(const std::vector<std::string>& run_dirs, const std::string& out_dir,
                                                const std::string& color_key = "", size_t position = 1);

// Everything a run directory allows: the training plots from metrics.jsonl, and the report plots
// from sink.json when present. Returns the paths written.
std::vector<std::string> write_run_plots(const std::string& run_dir, const std::string& out_dir);

}  // namespace sinklab
