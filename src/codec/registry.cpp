// Codec registry: name -> factory. Add a codec by adding its file and one line here.
#include "codec/registry.h"

#include "pbackup/error.h"

namespace pbackup {
namespace {
struct CodecEntry {
  const char* name;
  std::unique_ptr<Codec> (*make)(int level);
};
const CodecEntry kCodecs[] = {
    {"bzip2", make_bzip2_codec},
    {"gzip", make_gzip_codec},
    {"zstd", make_zstd_codec},
};
}  // namespace

std::unique_ptr<Codec> make_codec(const std::string& name, int level) {
  for (const auto& c : kCodecs)
    if (name == c.name) return c.make(level);
  std::string valid;
  for (auto& n : codec_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw Fatal("unknown codec '" + name + "' (valid: " + valid + ")");
}

std::vector<std::string> codec_names() {
  std::vector<std::string> v;
  for (const auto& c : kCodecs) v.push_back(c.name);
  return v;
}

}  // namespace pbackup
