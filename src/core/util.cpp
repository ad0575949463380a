// Small shared pieces: error messages, logging, entry ordering and serialization, SHA-256.
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "pbackup/comm.h"
#include "pbackup/entry.h"
#include "pbackup/error.h"
#include "pbackup/log.h"
#include "pbackup/sha256.h"

namespace pbackup {

std::string quote(const std::string& path) { return "'" + path + "'"; }

std::string sys_message(const std::string& what, const std::string& path, int err) {
  return what + " " + quote(path) + ": " + std::strerror(err);
}

void throw_sys(const std::string& what, const std::string& path, int err) {
  throw Fatal(sys_message(what, path, err));
}

std::string host_name() {
  static const std::string name = [] {
    char b[256] = {};
    if (::gethostname(b, sizeof b - 1) != 0) return std::string("?");
    return std::string(b);
  }();
  return name;
}

// ---- Log ----
void Log::line(const char* tag, const std::string& msg, bool with_rank) {
  std::string s = "pbackup: ";
  if (with_rank && world_ > 1) s += "rank " + std::to_string(rank_) + " (" + host_name() + "): ";
  if (*tag) s += std::string(tag) + ": ";
  s += msg;
  s += "\n";
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fflush(stderr);
}
void Log::error(const std::string& msg) { line("error", msg, true); }
void Log::warn(const std::string& msg) {
  ++warnings_;
  if (level_ >= LogLevel::Warn) line("warning", msg, true);
}
void Log::notice(const std::string& msg) {
  if (level_ >= LogLevel::Warn) line("warning", msg, true);
}
void Log::info(const std::string& msg) {
  if (level_ >= LogLevel::Info) line("", msg, false);
}
void Log::debug(const std::string& msg) {
  if (level_ >= LogLevel::Debug) line("debug", msg, true);
}

// ---- Entry ----
std::string disk_path(const Entry& e, const std::vector<Root>& roots) {
  const Root& r = roots.at(e.root);
  auto slash = e.path.find('/');
  if (slash == std::string::npos) return r.disk;
  return r.disk + e.path.substr(slash);
}

bool path_less(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    if (x == '/') return true;
    if (y == '/') return false;
    return x < y;
  }
  return a.size() < b.size();
}

void encode(ByteWriter& w, const Entry& e) {
  w.str(e.path);
  w.str(e.link);
  w.str(e.owner);
  w.str(e.xattrs);
  w.str(e.sparse);
  w.u64(e.size);
  w.i64(e.mtime_sec);
  w.u32(e.mtime_nsec);
  w.u32(e.mode);
  w.u32(e.uid);
  w.u32(e.gid);
  w.u32(e.nlink);
  w.u64(e.dev);
  w.u64(e.ino);
  w.u32(e.root);
  w.u8(static_cast<uint8_t>(e.type));
}

Entry decode_entry(ByteReader& r) {
  Entry e;
  e.path = r.str();
  e.link = r.str();
  e.owner = r.str();
  e.xattrs = r.str();
  e.sparse = r.str();
  e.size = r.u64();
  e.mtime_sec = r.i64();
  e.mtime_nsec = r.u32();
  e.mode = r.u32();
  e.uid = r.u32();
  e.gid = r.u32();
  e.nlink = r.u32();
  e.dev = r.u64();
  e.ino = r.u64();
  e.root = r.u32();
  e.type = static_cast<EntryType>(r.u8());
  return e;
}

// ---- LocalComm: a single rank never talks to anyone ----
void LocalComm::send(int, int, const std::string&) {
  throw std::logic_error("LocalComm::send: a one-rank run has no peer");
}
std::pair<int, std::string> LocalComm::recv_any(int) {
  throw std::logic_error("LocalComm::recv_any: a one-rank run has no peer");
}
std::string LocalComm::recv(int, int) {
  throw std::logic_error("LocalComm::recv: a one-rank run has no peer");
}

// ---- SHA-256 ----
// The context is owned by Impl, so a constructor that throws after creating it frees it too.
struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};
Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    throw Fatal("cannot initialise SHA-256 (OpenSSL)");
}
Sha256::~Sha256() = default;
void Sha256::update(std::string_view d) { EVP_DigestUpdate(impl_->ctx, d.data(), d.size()); }
std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &n);
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s.push_back(digits[md[i] >> 4]);
    s.push_back(digits[md[i] & 15]);
  }
  return s;
}
std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

}  // namespace pbackup
