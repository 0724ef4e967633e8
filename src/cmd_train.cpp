// sinklab train (being written).
#include "commands.h"
#include "error.h"
namespace sinklab {
int cmd_train(int, char**) { fail("train: not yet implemented"); }
}  // namespace sinklab
