# The front door. The real build is CMake (CMakeLists.txt); these targets drive it.
#   make            build build/sinklab (installs missing build dependencies first)
#   make test       build and run every test suite (CTest)
#   make run        the main job: prepare the default corpus, train softmax vs sigmoid over three
#                   seeds, analyse sinks, print the verdict (SEED=N: one seed; CORPUS=python-doc)
#   make run-flip   the causal flip: the fixed token at position 2 instead of a BOS
#   make calibrate  the calibration sweep behind `make run`'s setting (about 80 minutes on 2 cores)
#   make data       prepare the default corpus (cached under data/cache)
#   make experiment NAME=weight_decay [SCALE=laptop]   one of the paper's experiments (experiments/)
#   make bench      CPU benchmarks -> build/bench.json
#   make gpu-check  build for sm_90, run the GPU tests and the GPU benchmark (needs a GPU)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup configure build test run run-flip calibrate data experiment bench gpu-check clean

all: build

setup:
	@tools/setup.sh

$(BUILD)/CMakeCache.txt: | setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: setup configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

data: build
	@tools/setup.sh --data
	tools/make_data.sh

run: build
	@tools/setup.sh --data
	tools/run_headline.sh

run-flip: build
	@tools/setup.sh --data
	FLIP=1 tools/run_headline.sh

calibrate: build
	@tools/setup.sh --data
	tools/calibrate.sh

NAME ?=
SCALE ?= laptop
experiment: build
	@test -n "$(NAME)" || { echo "usage: make experiment NAME=<one of: $$(ls experiments | sed -n 's/\.json$$//p' | grep -v '^scales$$' | tr '\n' ' ')>"; exit 2; }
	@tools/setup.sh --data
	tools/make_data.sh
	$(BUILD)/sinklab experiment $(NAME) --scale $(SCALE)

bench: build
	@tools/setup.sh --bench
	tools/bench.sh

gpu-check:
	tools/gpu_check.sh

clean:
	rm -rf $(BUILD)
