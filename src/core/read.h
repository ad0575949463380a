// The DataSource that reads source files from disk (see read.cpp).
#pragma once
#include "pbackup/format.h"
#include "pbackup/log.h"

namespace pbackup {

class FileData final : public DataSource {
 public:
  explicit FileData(Log& log) : log_(log) {}
  void read(const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, bool last,
            char* out) override;

 private:
  Log& log_;
};

}  // namespace pbackup
