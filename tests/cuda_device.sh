# Sourced by the test scripts that run a program on --backend cuda:
# need_cuda_device NEGCUT_INFO exits 77 (skipped) unless that negcut-info
# reports a CUDA backend with a device.
need_cuda_device() {
  local info
  info=$("$1" 2>&1 || true)
  if [[ $info != *"cuda ("* || $info == *"cuda ("*", 0 devices)"* ]]; then
    echo "SKIPPED: no CUDA device"
    exit 77
  fi
}
