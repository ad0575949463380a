// Tar header parsing (see tar_read.h).
#include "format/tar_read.h"

#include <cstring>

#include "pbackup/error.h"

namespace pbackup {
namespace {

uint64_t number(const char* f, size_t width) {
  if (static_cast<unsigned char>(f[0]) & 0x80) {  // base-256 (GNU)
    uint64_t v = static_cast<unsigned char>(f[0]) & 0x7f;
    for (size_t i = 1; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(f[i]);
    return v;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < width && (f[i] == ' ' || f[i] == '\0')) ++i;
  for (; i < width && f[i] >= '0' && f[i] <= '7'; ++i) v = (v << 3) | static_cast<uint64_t>(f[i] - '0');
  return v;
}

std::string field(const char* f, size_t width) { return std::string(f, strnlen(f, width)); }

void parse_pax_time(const std::string& v, int64_t& sec, uint32_t& nsec) {
  bool neg = !v.empty() && v[0] == '-';
  size_t i = neg ? 1 : 0;
  int64_t s = 0;
  for (; i < v.size() && isdigit(static_cast<unsigned char>(v[i])); ++i) s = s * 10 + (v[i] - '0');
  uint32_t ns = 0;
  int digits = 0;
  if (i < v.size() && v[i] == '.')
    for (++i; i < v.size() && isdigit(static_cast<unsigned char>(v[i])) && digits < 9; ++i, ++digits) ns = ns * 10 + static_cast<uint32_t>(v[i] - '0');
  for (; digits < 9; ++digits) ns *= 10;
  if (neg) {  // -1.25 is 1.25 s before the epoch: second -2, plus 0.75
    sec = -s - (ns ? 1 : 0);
    nsec = ns ? 1000000000u - ns : 0;
  } else {
    sec = s;
    nsec = ns;
  }
}

}  // namespace

bool read_tar_member(std::string_view buf, size_t& pos, TarMember& m) {
  m = TarMember{};
  std::string pax_path, pax_link, gnu_long, gnu_link;
  bool have_size = false, have_mtime = false, have_uid = false, have_gid = false;
  uint64_t pax_size = 0;
  int64_t pax_mtime = 0;
  uint32_t pax_nsec = 0, pax_uid = 0, pax_gid = 0;
  while (true) {
    if (pos + 512 > buf.size()) throw Fatal("tar header cut short");
    const char* h = buf.data() + pos;
    bool zero = true;
    for (size_t i = 0; i < 512 && zero; ++i) zero = h[i] == 0;
    if (zero) return false;
    unsigned sum = 0;
    for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    if (sum != number(h + 148, 8)) throw Fatal("tar header checksum mismatch");
    char type = h[156] ? h[156] : '0';
    uint64_t size = number(h + 124, 12);
    pos += 512;
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      if (pos + size > buf.size()) throw Fatal("tar extended header cut short");
      std::string_view data = buf.substr(pos, size);
      pos += tar_padded(size);
      if (type == 'L') { gnu_long = std::string(data.substr(0, strnlen(data.data(), data.size()))); continue; }
      if (type == 'K') { gnu_link = std::string(data.substr(0, strnlen(data.data(), data.size()))); continue; }
      if (type == 'g') continue;
      while (!data.empty()) {  // "len key=value\n"
        size_t sp = data.find(' ');
        if (sp == std::string_view::npos) throw Fatal("bad pax record");
        uint64_t len = std::stoull(std::string(data.substr(0, sp)));
        if (len <= sp + 1 || len > data.size()) throw Fatal("bad pax record length");
        std::string_view rec = data.substr(sp + 1, len - sp - 2);
        size_t eq = rec.find('=');
        if (eq != std::string_view::npos) {
          std::string key(rec.substr(0, eq)), value(rec.substr(eq + 1));
          if (key == "path") pax_path = value;
          else if (key == "linkpath") pax_link = value;
          else if (key == "size") { pax_size = std::stoull(value); have_size = true; }
          else if (key == "mtime") { parse_pax_time(value, pax_mtime, pax_nsec); have_mtime = true; }
          else if (key == "uid") { pax_uid = static_cast<uint32_t>(std::stoul(value)); have_uid = true; }
          else if (key == "gid") { pax_gid = static_cast<uint32_t>(std::stoul(value)); have_gid = true; }
        }
        data.remove_prefix(len);
      }
      continue;
    }
    m.type = type;
    std::string name = field(h, 100), prefix;
    if (std::memcmp(h + 257, "ustar", 5) == 0) prefix = field(h + 345, 155);
    m.path = !pax_path.empty() ? pax_path : !gnu_long.empty() ? gnu_long : (prefix.empty() ? name : prefix + "/" + name);
    m.link = !pax_link.empty() ? pax_link : !gnu_link.empty() ? gnu_link : field(h + 157, 100);
    m.size = have_size ? pax_size : size;
    m.mtime = have_mtime ? pax_mtime : static_cast<int64_t>(number(h + 136, 12));
    m.mtime_nsec = have_mtime ? pax_nsec : 0;
    m.mode = static_cast<uint32_t>(number(h + 100, 8)) & 07777;
    m.uid = have_uid ? pax_uid : static_cast<uint32_t>(number(h + 108, 8));
    m.gid = have_gid ? pax_gid : static_cast<uint32_t>(number(h + 116, 8));
    if (m.type == '1' || m.type == '2' || m.type == '5' || m.type == '6') m.size = 0;
    while (m.path.size() > 1 && m.path.back() == '/') m.path.pop_back();
    return true;
  }
}

}  // namespace pbackup
