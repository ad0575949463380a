// Manifest JSON: written by hand (a fixed shape, escaped strings) and read back with a small
// strict parser, so the tool needs no JSON library. Unknown keys are ignored on reading so
// newer manifests stay readable.
#include "pbackup/manifest.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <variant>

#include "pbackup/error.h"

namespace pbackup {
namespace {

std::string esc(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o.push_back(static_cast<char>(c));
        }
    }
  }
  return o + "\"";
}

// ---- a minimal JSON value and parser ----
struct Json;
using JsonObject = std::map<std::string, Json>;
using JsonArray = std::vector<Json>;
struct Json {
  std::variant<std::nullptr_t, bool, double, std::string, std::shared_ptr<JsonArray>, std::shared_ptr<JsonObject>> v;
  uint64_t u = 0;  // exact value of non-negative integers
  const Json& at(const std::string& k) const {
    auto* o = std::get_if<std::shared_ptr<JsonObject>>(&v);
    if (!o) throw Fatal("manifest: expected an object around " + quote(k));
    auto it = (*o)->find(k);
    if (it == (*o)->end()) throw Fatal("manifest: missing key " + quote(k));
    return it->second;
  }
  bool has(const std::string& k) const {
    auto* o = std::get_if<std::shared_ptr<JsonObject>>(&v);
    return o && (*o)->count(k);
  }
  const std::string& str() const {
    auto* s = std::get_if<std::string>(&v);
    if (!s) throw Fatal("manifest: expected a string");
    return *s;
  }
  uint64_t num() const {
    if (!std::holds_alternative<double>(v)) throw Fatal("manifest: expected a number");
    return u;
  }
  const JsonArray& arr() const {
    auto* a = std::get_if<std::shared_ptr<JsonArray>>(&v);
    if (!a) throw Fatal("manifest: expected an array");
    return **a;
  }
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}
  Json parse() {
    Json j = value();
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return j;
  }

 private:
  [[noreturn]] void fail(const char* why) {
    throw Fatal(std::string("manifest is not valid JSON: ") + why + " at byte " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail("unexpected character");
    ++i_;
  }
  Json value() {
    if (++depth_ > 64) fail("nested too deeply");
    Json j;
    char c = peek();
    if (c == '{') {
      ++i_;
      auto o = std::make_shared<JsonObject>();
      if (peek() != '}') {
        while (true) {
          std::string k = string();
          expect(':');
          (*o)[k] = value();
          if (peek() == ',') { ++i_; continue; }
          break;
        }
      }
      expect('}');
      j.v = o;
    } else if (c == '[') {
      ++i_;
      auto a = std::make_shared<JsonArray>();
      if (peek() != ']') {
        while (true) {
          a->push_back(value());
          if (peek() == ',') { ++i_; continue; }
          break;
        }
      }
      expect(']');
      j.v = a;
    } else if (c == '"') {
      j.v = string();
    } else if (s_.compare(i_, 4, "true") == 0) {
      i_ += 4;
      j.v = true;
    } else if (s_.compare(i_, 5, "false") == 0) {
      i_ += 5;
      j.v = false;
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
      j.v = nullptr;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = i_;
      bool integer = c != '-';
      uint64_t u = 0;
      if (c == '-') ++i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        u = u * 10 + static_cast<uint64_t>(s_[i_] - '0');
        ++i_;
      }
      while (i_ < s_.size() && std::strchr(".eE+-0123456789", s_[i_])) { integer = false; ++i_; }
      j.v = std::strtod(s_.substr(start, i_ - start).c_str(), nullptr);
      j.u = integer ? u : 0;
    } else {
      fail("unexpected character");
    }
    --depth_;
    return j;
  }
  std::string string() {
    expect('"');
    std::string o;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      char c = s_[i_++];
      if (c == '"') break;
      if (c != '\\') { o.push_back(c); continue; }
      if (i_ >= s_.size()) fail("unterminated string");
      char e = s_[i_++];
      switch (e) {
        case 'n': o.push_back('\n'); break;
        case 't': o.push_back('\t'); break;
        case 'r': o.push_back('\r'); break;
        case 'b': o.push_back('\b'); break;
        case 'f': o.push_back('\f'); break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("bad escape");
          unsigned cp = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
          i_ += 4;
          if (cp < 0x80) o.push_back(static_cast<char>(cp));
          else if (cp < 0x800) { o.push_back(char(0xC0 | (cp >> 6))); o.push_back(char(0x80 | (cp & 0x3F))); }
          else { o.push_back(char(0xE0 | (cp >> 12))); o.push_back(char(0x80 | ((cp >> 6) & 0x3F))); o.push_back(char(0x80 | (cp & 0x3F))); }
          break;
        }
        default: o.push_back(e);
      }
    }
    return o;
  }
  const std::string& s_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string manifest_to_json(const Manifest& m) {
  std::string o = "{\n";
  o += "  \"pbackup_manifest\": 1,\n";
  o += "  \"tool_version\": " + esc(m.tool_version) + ",\n";
  o += "  \"command\": " + esc(m.command) + ",\n";
  o += "  \"created\": " + esc(m.created) + ",\n";
  o += "  \"format\": " + esc(m.format) + ",\n";
  o += "  \"codec\": " + esc(m.codec) + ",\n";
  o += "  \"archive\": " + esc(m.archive) + ",\n";
  o += "  \"archive_size\": " + std::to_string(m.archive_size) + ",\n";
  o += "  \"split_bytes\": " + std::to_string(m.split_bytes) + ",\n";
  o += "  \"entries\": " + std::to_string(m.entries) + ",\n";
  o += "  \"sources\": [";
  for (size_t i = 0; i < m.sources.size(); ++i) o += (i ? ", " : "") + esc(m.sources[i]);
  o += "],\n";
  if (!m.damaged.empty()) {  // only when there are any: manifests of clean backups stay as they were
    o += "  \"damaged\": [";
    for (size_t i = 0; i < m.damaged.size(); ++i) o += (i ? ", " : "") + esc(m.damaged[i]);
    o += "],\n";
  }
  o += "  \"fragments\": [\n";
  for (size_t i = 0; i < m.fragments.size(); ++i) {
    const auto& f = m.fragments[i];
    o += "    {\"name\": " + esc(f.name) + ", \"size\": " + std::to_string(f.size) +
         ", \"sha256\": " + esc(f.sha256) + "}" + (i + 1 < m.fragments.size() ? ",\n" : "\n");
  }
  o += "  ],\n  \"blocks\": [\n";
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const auto& b = m.blocks[i];
    o += "    {\"offset\": " + std::to_string(b.offset) + ", \"size\": " + std::to_string(b.size) +
         ", \"raw_offset\": " + std::to_string(b.raw_offset) + ", \"raw_size\": " + std::to_string(b.raw_size) +
         ", \"sha256\": " + esc(b.sha256) + ", \"first_entry\": " + esc(b.first_entry) + ", \"kind\": " + esc(b.kind) +
         (b.continues ? ", \"continues\": {\"offset\": " + std::to_string(b.cont_offset) + ", \"size\": " + std::to_string(b.cont_size) + "}" : "") +
         "}" +
         (i + 1 < m.blocks.size() ? ",\n" : "\n");
  }
  o += "  ]\n}\n";
  return o;
}

Manifest manifest_from_json(const std::string& text) {
  Json j = Parser(text).parse();
  if (!j.has("pbackup_manifest")) throw Fatal("not a pbackup manifest (no \"pbackup_manifest\" key)");
  Manifest m;
  m.tool_version = j.at("tool_version").str();
  m.command = j.at("command").str();
  m.created = j.at("created").str();
  m.format = j.at("format").str();
  m.codec = j.at("codec").str();
  m.archive = j.at("archive").str();
  m.archive_size = j.at("archive_size").num();
  m.split_bytes = j.at("split_bytes").num();
  m.entries = j.at("entries").num();
  for (auto& s : j.at("sources").arr()) m.sources.push_back(s.str());
  if (j.has("damaged"))
    for (auto& d : j.at("damaged").arr()) m.damaged.push_back(d.str());
  for (auto& f : j.at("fragments").arr())
    m.fragments.push_back({f.at("name").str(), f.at("size").num(), f.at("sha256").str()});
  for (auto& b : j.at("blocks").arr()) {
    ManifestBlock mb;
    mb.offset = b.at("offset").num();
    mb.size = b.at("size").num();
    mb.raw_offset = b.at("raw_offset").num();
    mb.raw_size = b.at("raw_size").num();
    mb.sha256 = b.at("sha256").str();
    mb.first_entry = b.at("first_entry").str();
    mb.kind = b.has("kind") ? b.at("kind").str() : "block";
    if (b.has("continues")) {
      mb.continues = true;
      mb.cont_offset = b.at("continues").at("offset").num();
      mb.cont_size = b.at("continues").at("size").num();
    }
    m.blocks.push_back(std::move(mb));
  }
  return m;
}

std::string checksum_file(const Manifest& m) {
  std::string o;
  for (const auto& f : m.fragments)
    if (!f.sha256.empty()) o += f.sha256 + "  " + f.name + "\n";
  return o;
}

}  // namespace pbackup
