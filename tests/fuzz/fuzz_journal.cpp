// libFuzzer target: the backup --resume journal reader (parse_journal, core/resume.h), fed in
// chunks of varying size as the file is read. Its contract: never throws and never crashes on
// malformed input, a journal it cannot use comes back with `why` set (the run starts over),
// memory stays bounded by the input. What it accepts must hold together: blocks numbered
// 0..K-1 that tile the archive from byte 0 to `end` without overflow, SHA-256s in hex, a tag
// of 16 hex digits, good_bytes within the input and ending at a newline.
// The expected plan: any command but one starting with "00" matches, 100000 blocks, and a block
// whose print starts with "00" has changed (so every refusal path is reached).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/resume.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t step = size ? 1 + data[size - 1] % 251 : 1;
  size_t at = 0;
  pbackup::JournalExpect expect;
  expect.same_command = [](const std::string& c) { return c.rfind("00", 0) != 0; };
  expect.blocks = 100000;
  expect.differs = [](const pbackup::JournalBlock& b, const std::string& print) -> std::string {
    if (b.id >= 100000) __builtin_trap();  // parse_journal checks the id against the plan first
    return print.rfind("00", 0) == 0 ? "changed" : "";
  };
  expect.max_line = 4096;
  pbackup::JournalRead r = pbackup::parse_journal([&]() -> std::string_view {
    if (at >= in.size()) return {};
    std::string_view c = in.substr(at, step);
    at += c.size();
    return c;
  }, expect);
  if (r.good_bytes > size || (r.good_bytes && in[r.good_bytes - 1] != '\n')) __builtin_trap();
  if (!r.why.empty()) return 0;
  if (r.tag.size() != 16) __builtin_trap();
  uint64_t end = 0;
  for (size_t i = 0; i < r.blocks.size(); ++i) {
    const pbackup::JournalBlock& b = r.blocks[i];
    if (b.id != i || b.offset != end || b.size == 0 || b.sha256.size() != 64) __builtin_trap();
    if (__builtin_add_overflow(end, b.size, &end)) __builtin_trap();
  }
  if (end != r.end) __builtin_trap();
  // the whole text at once reads the same
  pbackup::JournalRead again = pbackup::parse_journal(in, expect);
  if (again.why != r.why || again.blocks.size() != r.blocks.size() || again.damaged != r.damaged || again.good_bytes != r.good_bytes)
    __builtin_trap();
  return 0;
}
