// --algo -> format: "zip" is the zip container with deflate; every codec name is tar + codec.
#include "format/registry.h"

#include "pbackup/error.h"

namespace pbackup {

std::unique_ptr<Format> make_format(const std::string& algo, int level) {
  if (algo == "zip") return make_zip_format(level);
  for (const auto& c : codec_names())
    if (c == algo) return make_tar_format(make_codec(algo, level));
  std::string valid;
  for (auto& n : algo_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw Fatal("unknown --algo '" + algo + "' (valid: " + valid + ")");
}

std::vector<std::string> algo_names() {
  std::vector<std::string> v{"zip"};
  for (auto& c : codec_names()) v.push_back(c);
  return v;
}

}  // namespace pbackup
