// sinklab plot RUN: the pictures of a run directory, as SVG files a browser opens.
#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "sink/sink_plots.h"
#include "util/error.h"

namespace sinklab {

int cmd_plot(int argc, char** argv) {
    ArgParser args("plot", "Draw a run's pictures: loss.svg and sink_curve.svg from metrics.jsonl, and "
                           "sink_per_layer.svg, norms.svg, attention_maps.svg from sink.json when present.");
    args.option("run", "", "run directory written by sinklab train --out (required)", "DIR");
    args.option("out", "", "where to write the SVG files (default: the run directory)", "DIR");
    args.epilog("example: sinklab plot --run runs/softmax");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("run")) fail("--run: give the run directory (see sinklab plot --help)");
    const std::string run = args.get("run");
    const std::string out = args.has("out") ? args.get("out") : run;
    for (const std::string& path : write_run_plots(run, out)) fmt::print("wrote {}\n", path);
    return 0;
}

}  // namespace sinklab
