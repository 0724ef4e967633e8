// The CPU backend's operations, all of them: the reference implementation. Each operation is a
// forward/backward pair of plain loops in its own header, with its shapes and its math written
// above it; its CUDA twin has the same name, the same comment and a twin file name
// (src/ops/rmsnorm.h <-> cuda/rmsnorm.cu; declarations in cuda/ops_cuda.h). Templated on the
// scalar type so that gradient checks run in double; the trainer runs in float. The conventions
// (shapes, layouts, += in backward) are in src/ops/common.h.
#pragma once
#include "ops/activation.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/bias.h"
#include "ops/common.h"
#include "ops/crossentropy.h"
#include "ops/embedding.h"
#include "ops/gate.h"
#include "ops/glu.h"
#include "ops/head_sum.h"
#include "ops/matmul.h"
#include "ops/qkv_merge.h"
#include "ops/residual.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
