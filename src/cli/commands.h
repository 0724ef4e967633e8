// The sub-commands of the sinklab program. Each takes (argc, argv) with argv[0] = the command name
// and returns the process exit code; errors are thrown as sinklab::Error and printed by main().
#pragma once

namespace sinklab {

int cmd_info(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_tokenizer(int argc, char** argv);
int cmd_prepare(int argc, char** argv);
int cmd_sample(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_plot(int argc, char** argv);
int cmd_sink(int argc, char** argv);
int cmd_experiment(int argc, char** argv);
int cmd_stream(int argc, char** argv);
int cmd_import(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_logits(int argc, char** argv);

}  // namespace sinklab
