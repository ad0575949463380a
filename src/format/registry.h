// Format registry internals: the factories of the format files.
#pragma once
#include <memory>

#include "pbackup/codec.h"
#include "pbackup/format.h"

namespace pbackup {
std::unique_ptr<Format> make_tar_format(std::unique_ptr<Codec> codec);
std::unique_ptr<Format> make_zip_format(int level);
}  // namespace pbackup
