// One field list per wire struct. A struct T that crosses ranks names its fields once:
//   template <class Ar> void fields(Ar& a, T& t) { a(t.x); a(t.y); ... }
// WireOut writes them and WireIn reads them back in the same order, so the two sides cannot
// drift apart. put/get (on a ByteWriter/ByteReader) and to_wire/from_wire (whole messages)
// use them. Strings, integers, bools, one-byte enums, vectors and nested structs are fields.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <type_traits>
#include <vector>

#include "pbackup/bytes.h"

namespace pbackup {

class WireOut;
class WireIn;

template <class T, class Ar>
concept HasFields = requires(Ar& a, T& t) { fields(a, t); };

class WireOut {
 public:
  static constexpr bool kWriting = true;
  explicit WireOut(ByteWriter& w) : w_(w) {}
  void operator()(const uint8_t& v) { w_.u8(v); }
  void operator()(const bool& v) { w_.u8(v ? 1 : 0); }
  void operator()(const char& v) { w_.u8(static_cast<uint8_t>(v)); }
  void operator()(const uint32_t& v) { w_.u32(v); }
  void operator()(const uint64_t& v) { w_.u64(v); }
  void operator()(const int64_t& v) { w_.i64(v); }
  void operator()(const std::string& s) { w_.str(s); }
  template <class E>
    requires std::is_enum_v<E>
  void operator()(const E& e) {
    static_assert(sizeof(E) == 1, "wire enums are one byte");
    w_.u8(static_cast<uint8_t>(e));
  }
  template <class T>
  void operator()(const std::vector<T>& v) {
    list(v);
  }
  template <class T>
  void operator()(const std::deque<T>& v) {
    list(v);
  }
  template <class T>
    requires HasFields<T, WireOut>
  void operator()(const T& t) {
    fields(*this, const_cast<T&>(t));  // fields() only reads through a WireOut
  }
  // Two flags packed in one byte (a | b << 1).
  void flags(const bool& a, const bool& b) { w_.u8(static_cast<uint8_t>(a | (b << 1))); }

 private:
  template <class L>
  void list(const L& v) {
    w_.u64(v.size());
    for (const auto& x : v) (*this)(x);
  }
  ByteWriter& w_;
};

class WireIn {
 public:
  static constexpr bool kWriting = false;
  explicit WireIn(ByteReader& r) : r_(r) {}
  void operator()(uint8_t& v) { v = r_.u8(); }
  void operator()(bool& v) { v = r_.u8() != 0; }
  void operator()(char& v) { v = static_cast<char>(r_.u8()); }
  void operator()(uint32_t& v) { v = r_.u32(); }
  void operator()(uint64_t& v) { v = r_.u64(); }
  void operator()(int64_t& v) { v = r_.i64(); }
  void operator()(std::string& s) { s = r_.str(); }
  template <class E>
    requires std::is_enum_v<E>
  void operator()(E& e) {
    static_assert(sizeof(E) == 1, "wire enums are one byte");
    e = static_cast<E>(r_.u8());
  }
  template <class T>
  void operator()(std::vector<T>& v) {
    list(v);
  }
  template <class T>
  void operator()(std::deque<T>& v) {
    list(v);
  }
  template <class T>
    requires HasFields<T, WireIn>
  void operator()(T& t) {
    fields(*this, t);
  }
  void flags(bool& a, bool& b) {
    uint8_t f = r_.u8();
    a = f & 1;
    b = f & 2;
  }

 private:
  // No reserve: a hostile count ends at the first truncated element, not in a huge allocation.
  template <class L>
  void list(L& v) {
    v.clear();
    for (uint64_t i = 0, n = r_.u64(); i < n; ++i) {
      typename L::value_type x{};
      (*this)(x);
      v.push_back(std::move(x));
    }
  }
  ByteReader& r_;
};

template <class T>
void put(ByteWriter& w, const T& t) {
  WireOut a(w);
  a(t);
}

template <class T>
T get(ByteReader& r) {
  T t{};
  WireIn a(r);
  a(t);
  return t;
}

template <class T>
std::string to_wire(const T& t) {
  ByteWriter w;
  put(w, t);
  return w.take();
}

// A whole message: trailing bytes are an error like missing ones.
template <class T>
T from_wire(std::string_view bytes) {
  ByteReader r(bytes);
  T t = get<T>(r);
  if (!r.done()) throw std::runtime_error("internal message has trailing bytes");
  return t;
}

}  // namespace pbackup
