// pax records (see pax.h).
#include "format/pax.h"

#include <charconv>
#include <cstdint>

#include "pbackup/error.h"

namespace pbackup {

void add_pax_record(std::string& recs, std::string_view key, std::string_view value) {
  size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  recs += std::to_string(len);
  recs += ' ';
  recs += key;
  recs += '=';
  recs += value;
  recs += '\n';
}

void for_each_pax_record(std::string_view data, const std::function<void(std::string_view, std::string_view)>& f) {
  while (!data.empty()) {
    size_t sp = data.find(' ');
    if (sp == std::string_view::npos || sp == 0) throw Fatal("tar: bad pax record (no length)");
    uint64_t len = 0;
    auto r = std::from_chars(data.data(), data.data() + sp, len, 10);
    if (r.ec != std::errc() || r.ptr != data.data() + sp || len < sp + 2 || len > data.size() || data[len - 1] != '\n')
      throw Fatal("tar: bad pax record length");
    std::string_view rec = data.substr(sp + 1, len - sp - 2);
    data.remove_prefix(len);
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos) throw Fatal("tar: bad pax record (no '=')");
    f(rec.substr(0, eq), rec.substr(eq + 1));
  }
}

std::string encode_xattr_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '%') out += "%25";
    else if (c == '=') out += "%3D";
    else out += c;
  }
  return out;
}

std::string decode_xattr_name(std::string_view key) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '%' && i + 2 < key.size() && hex(key[i + 1]) >= 0 && hex(key[i + 2]) >= 0) {
      out += static_cast<char>(hex(key[i + 1]) * 16 + hex(key[i + 2]));
      i += 2;
    } else {
      out += key[i];
    }
  }
  return out;
}

bool decode_base64(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

bool valid_utf8(std::string_view s) {
  const auto c = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  for (size_t i = 0; i < s.size();) {
    unsigned char b = c(i);
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (b >= 0xC2 && b <= 0xDF) n = 2, cp = b & 0x1F;
    else if (b >= 0xE0 && b <= 0xEF) n = 3, cp = b & 0x0F;
    else if (b >= 0xF0 && b <= 0xF4) n = 4, cp = b & 0x07;
    else return false;
    if (s.size() - i < n) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((c(i + k) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c(i + k) & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

}  // namespace pbackup
