// pax records (see pax.h).
#include "format/pax.h"

#include <charconv>

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

}  // namespace pbackup
