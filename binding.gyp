{
  "targets": [
    {
      # Shared library loaded with koffi (the default `ffi` backend).
      "target_name": "palisade",
      "type": "shared_library",
      "product_prefix": "lib",
      "product_extension": "so",
      "sources": ["native/parser.c", "native/router.c", "native/shdict.c"],
      "libraries": ["-lpthread", "-lm"],
      "cflags": ["-O2", "-std=c11", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags!": ["-fno-exceptions"]
    },
    {
      # The same sources as an N-API addon (the `napi` backend).
      "target_name": "palisade_napi",
      "sources": ["native/napi.cc", "native/parser.c", "native/router.c", "native/shdict.c"],
      "libraries": ["-lpthread", "-lm"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-O2", "-Wall", "-fvisibility=hidden"],
      "cflags_c": ["-std=c11"],
      "cflags_cc": ["-std=c++17"]
    }
  ]
}
