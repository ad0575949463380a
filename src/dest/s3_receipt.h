// What the rank that uploaded a part tells rank 0 about it (through the core's part exchange,
// as StoredPart::receipt): the part's ETag, and with --split-chunk-mb the fragment's own
// multipart upload id, which rank 0 completes at commit. One field list (pbackup/wire.h).
#pragma once
#include <string>

#include "pbackup/wire.h"

namespace pbackup {

struct PartReceipt {
  std::string etag;
  std::string upload_id;  // a fragment's own upload (--split-chunk-mb); "" for a part of the one upload
  bool operator==(const PartReceipt&) const = default;
};
template <class Ar>
void fields(Ar& a, PartReceipt& r) {
  a(r.etag), a(r.upload_id);
}

}  // namespace pbackup
