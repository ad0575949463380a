// Little binary encoder/decoder used to move plans, jobs and results between ranks.
// Every read is bounds-checked: a short or damaged buffer throws instead of reading past the end.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pbackup {

class ByteWriter {
 public:
  void u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void i64(int64_t v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    u64(s.size());
    buf_.append(s.data(), s.size());
  }
  std::string& buffer() { return buf_; }
  std::string take() { return std::move(buf_); }

 private:
  void raw(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  std::string buf_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view s) : s_(s) {}
  uint8_t u8() { return static_cast<uint8_t>(take(1)[0]); }
  uint32_t u32() { return pod<uint32_t>(); }
  uint64_t u64() { return pod<uint64_t>(); }
  int64_t i64() { return pod<int64_t>(); }
  std::string str() {
    uint64_t n = u64();
    return std::string(take(n));
  }
  bool done() const { return pos_ == s_.size(); }

 private:
  template <class T>
  T pod() {
    T v;
    std::memcpy(&v, take(sizeof v).data(), sizeof v);
    return v;
  }
  std::string_view take(uint64_t n) {
    if (n > s_.size() - pos_) throw std::runtime_error("internal message truncated");
    auto r = s_.substr(pos_, n);
    pos_ += n;
    return r;
  }
  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace pbackup
