{
  "targets": [
    {
      "target_name": "livebackup_host_seek",
      "sources": ["native/host-seek.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "conditions": [
        ["OS=='win'", { "type": "none" }]
      ]
    }
  ]
}
