// Strings that rank 0 keeps once per file but that are usually empty (an entry's xattr records,
// its sparse map) or shared by thousands of entries (its "uname:gname"): one pointer each in an
// Entry instead of a 32-byte std::string, so a file costs under 300 bytes on rank 0 (DESIGN §2).
//   RareString     owns its text; empty costs no allocation.
//   InternedString points into a process-wide set of owner strings (a few per run), shared by
//                  every entry with that owner and never freed.
// Both read as a `const std::string&` and travel between ranks as plain strings (wire.h).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace pbackup {

class RareString {
 public:
  RareString() = default;
  RareString(std::string s) { assign(std::move(s)); }  // NOLINT: reads as a string
  RareString(const RareString& o) { assign(o.str()); }
  RareString(RareString&&) noexcept = default;
  RareString& operator=(const RareString& o) {
    if (this != &o) assign(o.str());
    return *this;
  }
  RareString& operator=(RareString&&) noexcept = default;
  RareString& operator=(std::string s) {
    assign(std::move(s));
    return *this;
  }
  const std::string& str() const { return p_ ? *p_ : empty_string(); }
  operator const std::string&() const { return str(); }  // NOLINT
  bool empty() const { return !p_; }
  void clear() { p_.reset(); }
  bool operator==(const RareString& o) const { return str() == o.str(); }

  static const std::string& empty_string();  // what an empty one reads as

 private:
  void assign(std::string s) {
    if (s.empty()) p_.reset();
    else p_ = std::make_unique<std::string>(std::move(s));
  }
  std::unique_ptr<std::string> p_;
};

class InternedString {
 public:
  InternedString() = default;
  InternedString(const std::string& s) : p_(intern(s)) {}  // NOLINT: reads as a string
  InternedString& operator=(const std::string& s) {
    p_ = intern(s);
    return *this;
  }
  const std::string& str() const { return p_ ? *p_ : RareString::empty_string(); }
  operator const std::string&() const { return str(); }  // NOLINT
  bool empty() const { return !p_; }
  bool operator==(const InternedString& o) const { return p_ == o.p_; }  // one copy per text

 private:
  static const std::string* intern(const std::string& s);  // nullptr for ""
  const std::string* p_ = nullptr;
};

// Wire form: the text (pbackup/wire.h calls this like any struct's field list).
template <class Ar, class S>
  requires std::is_same_v<S, RareString> || std::is_same_v<S, InternedString>
void fields(Ar& a, S& s) {
  if constexpr (Ar::kWriting) {
    a(s.str());
  } else {
    std::string t;
    a(t);
    s = std::move(t);
  }
}

}  // namespace pbackup
