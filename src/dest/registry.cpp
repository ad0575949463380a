// --dest-type -> destination (add one by adding its file and one line here); bucket -> store.
#include "dest/registry.h"

#include <stdexcept>

#include "pbackup/error.h"
#include "pbackup/store.h"

namespace pbackup {
namespace {
struct DestEntry {
  const char* name;
  std::unique_ptr<Destination> (*make)(const DestinationSpec&);
};
const DestEntry kDestinations[] = {
    {"cloud", make_cloud_destination},
    {"hdd", make_file_destination},
    {"memory", make_memory_destination},
    {"usb_split", make_split_destination},
};
}  // namespace

std::unique_ptr<Destination> make_destination(const DestinationSpec& spec) {
  for (const auto& d : kDestinations)
    if (spec.type == d.name) return d.make(spec);
  std::string valid;
  for (auto& n : destination_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw Fatal("unknown --dest-type '" + spec.type + "' (valid: " + valid + ")");
}

std::string Destination::store_part(uint64_t k, std::string_view, const std::string&) {
  throw std::logic_error("destination " + archive_name() + " stores no parts (part " + std::to_string(k) + ")");
}

std::vector<std::string> destination_names() {
  std::vector<std::string> v;
  for (const auto& d : kDestinations) v.push_back(d.name);
  return v;
}

std::shared_ptr<Store> make_store(const std::string& bucket, const S3Flags& flags) {
  return bucket.empty() ? make_local_store() : make_s3_store(bucket, flags);
}

}  // namespace pbackup
