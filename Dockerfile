# llama-chat-server image: a CUDA 13.0 build stage and a slim CUDA runtime stage, both Debian 12 (bookworm).
#
# Why Debian 12 with NVIDIA's CUDA apt repository, and not the nvidia/cuda:13.0.0-*-ubuntu24.04 images: the build
# stage runs the same scripts as `make` (scripts/install-deps.sh, scripts/build.sh), and install-deps.sh names
# Debian 12 packages (gRPC 1.51, protobuf 3.21, abseil 20220623, prometheus-cpp 1.0.1), which is what the
# developers' machines and CI build and test with. The runtime stage must carry the very library versions the
# build linked, so it is Debian 12 as well; NVIDIA publishes CUDA 13.0 for Debian 12 in the same repository it
# builds its own images from, so the CUDA side is the same toolkit the nvidia/cuda images hold.
#
#   docker build -t llama-chat-server:0.1.0 .
#   docker run --gpus all -p 50051:50051 -p 9400:9400 -v "$PWD/models:/models:ro" llama-chat-server:0.1.0 \
#     --model_dir=/models/stories15M --backend=cuda
#
# Models are never baked in: mount a directory (Kubernetes: a PersistentVolumeClaim) at /models.

FROM debian:12 AS build
ARG CUDA_REPO=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64
ARG CUDA_PKG=13-0
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && curl -fsSL -o /tmp/cuda-keyring.deb "${CUDA_REPO}/cuda-keyring_1.1-1_all.deb" \
 && dpkg -i /tmp/cuda-keyring.deb \
 && rm /tmp/cuda-keyring.deb \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      "cuda-nvcc-${CUDA_PKG}" "cuda-cudart-dev-${CUDA_PKG}" "libcublas-dev-${CUDA_PKG}" \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/cuda/bin:${PATH} \
    CUDACXX=/usr/local/cuda/bin/nvcc
WORKDIR /src
# Dependencies first, so that source edits do not invalidate this layer.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# Every build is portable (baseline x86-64; the CPU kernels pick AVX2 or AVX-512 at run time), no tests or benchmarks.
RUN BUILD_DIR=build \
    CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_BENCHMARKS=OFF -DLLAMA_CUDA=ON -DLLAMA_SENTENCEPIECE_MODULE=OFF" \
    bash scripts/build.sh \
 && bash deploy/docker/runtime-packages.sh build/bin/llama-chat-server build/bin/llama-chat \
      build/bin/libllama_cuda.so > /src/runtime-packages.txt \
 && cat /src/runtime-packages.txt

FROM debian:12-slim AS runtime
ARG CUDA_REPO=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /src/runtime-packages.txt /tmp/runtime-packages.txt
# Exactly the packages that own the libraries the binaries link (Debian's and NVIDIA's CUDA runtime ones).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && curl -fsSL -o /tmp/cuda-keyring.deb "${CUDA_REPO}/cuda-keyring_1.1-1_all.deb" \
 && dpkg -i /tmp/cuda-keyring.deb \
 && rm /tmp/cuda-keyring.deb \
 && apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends \
 && apt-get purge -y curl \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 llama \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin llama
# The NVIDIA container runtime mounts the driver libraries into containers that ask for these.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/cuda/lib64
# libllama_cuda.so is dlopen'ed from the executables' directory (engine/cuda_plugin.h). The tokenizer is our own
# (engine/text/sentencepiece_bpe.h): no libsentencepiece at run time.
COPY --from=build /src/build/bin/llama-chat-server /src/build/bin/llama-chat \
     /src/build/bin/libllama_cuda.so /usr/local/bin/
# Fail the build if the runtime stage misses a library (libcuda comes from the host's driver at run time).
RUN for f in /usr/local/bin/llama-chat-server /usr/local/bin/llama-chat /usr/local/bin/libllama_cuda.so; do \
      if ldd "$f" | grep "not found" | grep -Ev "libcuda\.so|libnvidia-"; then exit 1; fi; \
    done
USER 10001:10001
WORKDIR /tmp
# gRPC (ChatService, grpc.health.v1) and Prometheus /metrics.
EXPOSE 50051 9400
ENTRYPOINT ["/usr/local/bin/llama-chat-server"]
CMD ["--model_dir=/models/stories15M", "--backend=cuda", "--port=50051", "--metrics_port=9400"]
