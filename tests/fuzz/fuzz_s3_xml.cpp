// libFuzzer target: the S3 client's XML reading (a ListObjectsV2 page: entities, tags,
// url-encoded keys, sizes), as parse_list_objects_page exposes it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dest/s3_client.h"
#include "pbackup/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view xml(reinterpret_cast<const char*>(data), size);
  try {
    pbackup::S3ListPage page = pbackup::parse_list_objects_page(xml);
    for (const auto& o : page.objects)
      if (o.key.size() > xml.size() * 4) __builtin_trap();  // unescaping never grows a key much
  } catch (const pbackup::Fatal&) {
  }
  return 0;
}
