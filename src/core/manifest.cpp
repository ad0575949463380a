// Manifest JSON. Written by hand (a fixed shape, one block per line) and always valid JSON:
// strings that are not UTF-8 (file names are byte strings) take an escaped form, "\u0000"
// followed by the bytes with '%', NUL and every byte outside a valid UTF-8 sequence as %XX
// (docs/format.md). Read with nlohmann/json's SAX parser into the Manifest directly, so a
// manifest of millions of blocks is never held as a JSON tree; the handler knows the schema
// and refuses anything that is not exactly it (negative, fractional, exponent or overflowing
// numbers, wrong types, repeated or missing fields). Unknown keys are skipped so newer
// manifests stay readable. Older pbackup wrote non-UTF-8 names raw (invalid JSON): such a
// text is rewritten to the escaped form before parsing.
#include "pbackup/manifest.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iterator>
#include <new>
#include <utility>

#include "pbackup/error.h"

namespace pbackup {
namespace {

// Length of the valid UTF-8 sequence at s[i] (1-4), or 0 if none starts there (strict: no
// overlong forms, no surrogates, nothing past U+10FFFF: what JSON parsers accept).
size_t utf8_len(std::string_view s, size_t i) {
  const auto c = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b = c(i);
  if (b < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (b >= 0xC2 && b <= 0xDF) n = 2, cp = b & 0x1F;
  else if (b >= 0xE0 && b <= 0xEF) n = 3, cp = b & 0x0F;
  else if (b >= 0xF0 && b <= 0xF4) n = 4, cp = b & 0x07;
  else return 0;
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((c(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}

void hex_byte(std::string& o, unsigned char c) {
  static const char* const kHex = "0123456789ABCDEF";
  o.push_back('%');
  o.push_back(kHex[c >> 4]);
  o.push_back(kHex[c & 15]);
}

// JSON escaping of a valid UTF-8 string's characters (no quotes around).
void json_chars(std::string& o, std::string_view s) {
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
}

// A byte string as a JSON string: as is when it is UTF-8 (and does not start with NUL),
// otherwise "\u0000" + the bytes with '%', NUL and non-UTF-8 bytes as %XX.
std::string esc(std::string_view s) {
  std::string o = "\"";
  if (valid_utf8(s) && (s.empty() || s[0] != '\0')) {
    json_chars(o, s);
    return o + "\"";
  }
  std::string e;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i);
    if (n == 0 || s[i] == '%' || s[i] == '\0') {
      hex_byte(e, static_cast<unsigned char>(s[i]));
      ++i;
    } else {
      e.append(s.substr(i, n));
      i += n;
    }
  }
  o += "\\u0000";
  json_chars(o, e);
  return o + "\"";
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The inverse of esc() on a parsed JSON string; false if the escaped form is malformed.
bool unescape(std::string& s) {
  if (s.empty() || s[0] != '\0') return true;
  std::string o;
  o.reserve(s.size());
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] == '\0') return false;
    if (s[i] != '%') {
      o.push_back(s[i]);
      continue;
    }
    if (s.size() - i < 3) return false;
    int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    o.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  s = std::move(o);
  return true;
}

// Older pbackup wrote non-UTF-8 bytes of names raw. Rewrites every JSON string holding such
// bytes into the escaped form, so those manifests still read. Other damage is left for the
// parser to report.
std::string upgrade_raw_strings(std::string_view t) {
  std::string out;
  out.reserve(t.size() + t.size() / 8);
  size_t i = 0;
  while (i < t.size()) {
    if (t[i] != '"') {
      out.push_back(t[i++]);
      continue;
    }
    size_t j = i + 1;
    bool raw = false;
    while (j < t.size() && t[j] != '"') {
      if (t[j] == '\\') {
        j += 2;
      } else if (size_t n = utf8_len(t, j)) {
        j += n;
      } else {
        raw = true;
        ++j;
      }
    }
    if (j >= t.size()) {  // unterminated: the parser says so
      out.append(t.substr(i));
      break;
    }
    std::string_view body = t.substr(i + 1, j - i - 1);
    if (!raw) {
      out.append(t.substr(i, j - i + 1));
    } else {
      out += "\"\\u0000";
      for (size_t k = 0; k < body.size();) {
        if (body[k] == '\\') {  // a JSON escape, kept as it is
          out.append(body.substr(k, 2));
          k += 2;
        } else if (body[k] == '%') {
          out += "%25";
          ++k;
        } else if (size_t n = utf8_len(body, k)) {
          out.append(body.substr(k, n));
          k += n;
        } else {
          hex_byte(out, static_cast<unsigned char>(body[k]));
          ++k;
        }
      }
      out.push_back('"');
    }
    i = j + 1;
  }
  return out;
}

// ---- the schema-driven SAX handler ----

enum class Type { Str, U64, Array, Object };
struct Field {
  const char* name;
  Type type;
  bool required;
};
// Where the parser is. Skip: inside the value of an unknown key.
enum class Ctx { Top, Root, Sources, Damaged, Fragments, Fragment, Chain, ChainLink, Blocks, Block, Continues, Catalog, Sealed, Warnings, Warning, Skip };

constexpr Field kRootFields[] = {
    {"pbackup_manifest", Type::U64, true}, {"tool_version", Type::Str, true}, {"command", Type::Str, true},
    {"created", Type::Str, true},          {"format", Type::Str, true},       {"codec", Type::Str, true},
    {"archive", Type::Str, true},          {"archive_size", Type::U64, true}, {"split_bytes", Type::U64, true},
    {"entries", Type::U64, true},          {"sources", Type::Array, true},    {"fragments", Type::Array, true},
    {"blocks", Type::Array, true},         {"damaged", Type::Array, false},   {"catalog", Type::Object, false},
    {"xattr_entries", Type::U64, false},   {"acl_entries", Type::U64, false}, {"sparse_entries", Type::U64, false},
    {"encryption", Type::Str, false},      {"encrypted_size", Type::U64, false}, {"sealed_manifest", Type::Object, false},
    {"warnings", Type::Array, false},      {"warnings_total", Type::U64, false}, {"chain", Type::Array, false}};
constexpr Field kWarningFields[] = {{"path", Type::Str, true}, {"reason", Type::Str, true}};
constexpr Field kFragmentFields[] = {{"name", Type::Str, true}, {"size", Type::U64, true}, {"sha256", Type::Str, true}};
constexpr Field kBlockFields[] = {{"offset", Type::U64, true},      {"size", Type::U64, true},
                                  {"raw_offset", Type::U64, true},  {"raw_size", Type::U64, true},
                                  {"sha256", Type::Str, true},      {"first_entry", Type::Str, true},
                                  {"kind", Type::Str, false},       {"continues", Type::Object, false}};
constexpr Field kContinuesFields[] = {{"offset", Type::U64, true}, {"size", Type::U64, true}, {"sparse", Type::U64, false}};
constexpr int kMaxSkipDepth = 64;

struct Frame {
  Ctx ctx;
  uint32_t seen = 0;   // fields present so far (bit per Field)
  int skip_depth = 0;  // Skip: open objects/arrays
};

const char* type_name(Type t) {
  switch (t) {
    case Type::Str: return "a string";
    case Type::U64: return "an unsigned integer";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
  }
  return "?";
}

class Handler final : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit Handler(Manifest& m) : m_(m) { stack_.push_back({Ctx::Top}); }
  const std::string& error() const { return error_; }

  bool null() override { return scalar("null", nullptr, nullptr); }
  bool boolean(bool v) override { return scalar(v ? "true" : "false", nullptr, nullptr); }
  bool number_integer(number_integer_t v) override {
    std::string s = std::to_string(v);
    return scalar(("the negative number " + s).c_str(), nullptr, nullptr);
  }
  bool number_unsigned(number_unsigned_t v) override {
    uint64_t u = v;
    return scalar("an unsigned integer", &u, nullptr);
  }
  bool number_float(number_float_t, const string_t& s) override {
    return scalar(("the number " + s + " (not an integer, or past 2^64-1)").c_str(), nullptr, nullptr);
  }
  bool string(string_t& v) override { return scalar("a string", nullptr, &v); }
  bool binary(binary_t&) override { return scalar("binary data", nullptr, nullptr); }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    if (f.ctx == Ctx::Skip) return true;
    key_ = k;
    field_ = -1;
    auto [fields, n] = fields_of(f.ctx);
    for (size_t i = 0; i < n; ++i) {
      if (k != fields[i].name) continue;
      if (f.seen & (1u << i)) return fail(path(k) + ": appears twice");
      f.seen |= 1u << i;
      field_ = static_cast<int>(i);
    }
    return true;
  }
  bool start_object(std::size_t) override { return open(Type::Object); }
  bool start_array(std::size_t) override { return open(Type::Array); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ...
    // last read: '...'" -> "syntax error ...": our message says where.
    std::string why = ex.what();
    size_t colon = why.find(": ");
    if (colon != std::string::npos) why = why.substr(colon + 2);
    return fail("not valid JSON at byte " + std::to_string(position) + ": " + why);
  }

 private:
  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  std::pair<const Field*, size_t> fields_of(Ctx c) const {
    switch (c) {
      case Ctx::Root: return {kRootFields, std::size(kRootFields)};
      case Ctx::Fragment: return {kFragmentFields, std::size(kFragmentFields)};
      case Ctx::ChainLink: return {kFragmentFields, std::size(kFragmentFields)};
      case Ctx::Block: return {kBlockFields, std::size(kBlockFields)};
      case Ctx::Continues: return {kContinuesFields, std::size(kContinuesFields)};
      case Ctx::Catalog: return {kFragmentFields, std::size(kFragmentFields)};
      case Ctx::Sealed: return {kFragmentFields, std::size(kFragmentFields)};
      case Ctx::Warning: return {kWarningFields, std::size(kWarningFields)};
      default: return {nullptr, 0};
    }
  }
  // "blocks[3].continues.offset" for messages: the container the parser is in, plus `leaf`.
  std::string path(const std::string& leaf) const {
    std::string p;
    for (const Frame& f : stack_) {
      switch (f.ctx) {
        case Ctx::Sources: p = "sources[" + std::to_string(m_.sources.size()) + "]"; break;
        case Ctx::Damaged: p = "damaged[" + std::to_string(m_.damaged.size()) + "]"; break;
        case Ctx::Fragments: p = "fragments[" + std::to_string(m_.fragments.size()) + "]"; break;
        case Ctx::Fragment: p = "fragments[" + std::to_string(m_.fragments.size()) + "]"; break;
        case Ctx::Chain:
        case Ctx::ChainLink: p = "chain[" + std::to_string(m_.chain.size()) + "]"; break;
        case Ctx::Blocks: p = "blocks[" + std::to_string(m_.blocks.size()) + "]"; break;
        case Ctx::Block: p = "blocks[" + std::to_string(m_.blocks.size()) + "]"; break;
        case Ctx::Continues: p += ".continues"; break;
        case Ctx::Catalog: p = "catalog"; break;
        case Ctx::Sealed: p = "sealed_manifest"; break;
        case Ctx::Warnings:
        case Ctx::Warning: p = "warnings[" + std::to_string(m_.warnings.size()) + "]"; break;
        default: break;
      }
    }
    if (leaf.empty()) return p.empty() ? "the top level" : p;
    return p.empty() ? leaf : p + "." + leaf;
  }
  bool mismatch(const Field& f, const char* found) {
    return fail(path(f.name) + ": expected " + type_name(f.type) + ", found " + found);
  }

  bool scalar(const char* found, const uint64_t* u, std::string* s) {
    Frame& fr = stack_.back();
    switch (fr.ctx) {
      case Ctx::Skip: return true;
      case Ctx::Top: return fail("not a pbackup manifest (the top level is not a JSON object)");
      case Ctx::Sources:
        if (!s) return fail(path("") + ": expected a string, found " + found);
        if (!unescape(*s)) return fail(path("") + ": malformed escaped name (\\u0000 form)");
        m_.sources.push_back(std::move(*s));
        return true;
      case Ctx::Damaged:
        if (!s) return fail(path("") + ": expected a string, found " + found);
        if (!unescape(*s)) return fail(path("") + ": malformed escaped name (\\u0000 form)");
        m_.damaged.push_back(std::move(*s));
        return true;
      case Ctx::Fragments:
      case Ctx::Chain:
      case Ctx::Warnings:
      case Ctx::Blocks: return fail(path("") + ": expected an object, found " + found);
      default: break;
    }
    if (field_ < 0) return true;  // unknown key: skipped
    auto [fields, n] = fields_of(fr.ctx);
    const Field& f = fields[field_];
    if (f.type == Type::U64 && !u) return mismatch(f, found);
    if (f.type == Type::Str && !s) return mismatch(f, found);
    if (f.type == Type::Array || f.type == Type::Object) return mismatch(f, found);
    if (s && !unescape(*s)) return fail(path(f.name) + ": malformed escaped name (\\u0000 form)");
    store(fr.ctx, f.name, u ? *u : 0, s);
    return true;
  }

  void store(Ctx c, std::string_view k, uint64_t u, std::string* s) {
    auto str = [&](std::string& dst) { dst = std::move(*s); };
    if (c == Ctx::Root) {
      if (k == "pbackup_manifest") version_ = u;
      else if (k == "tool_version") str(m_.tool_version);
      else if (k == "command") str(m_.command);
      else if (k == "created") str(m_.created);
      else if (k == "format") str(m_.format);
      else if (k == "codec") str(m_.codec);
      else if (k == "archive") str(m_.archive);
      else if (k == "archive_size") m_.archive_size = u;
      else if (k == "split_bytes") m_.split_bytes = u;
      else if (k == "entries") m_.entries = u;
      else if (k == "xattr_entries") m_.xattr_entries = u;
      else if (k == "acl_entries") m_.acl_entries = u;
      else if (k == "sparse_entries") m_.sparse_entries = u;
      else if (k == "encryption") str(m_.encryption);
      else if (k == "encrypted_size") m_.encrypted_size = u;
      else if (k == "warnings_total") m_.warnings_total = u;
    } else if (c == Ctx::Warning) {
      if (k == "path") str(warning_.path);
      else if (k == "reason") str(warning_.reason);
    } else if (c == Ctx::Fragment || c == Ctx::ChainLink) {
      if (k == "name") str(frag_.name);
      else if (k == "size") frag_.size = u;
      else if (k == "sha256") str(frag_.sha256);
    } else if (c == Ctx::Block) {
      if (k == "offset") block_.offset = u;
      else if (k == "size") block_.size = u;
      else if (k == "raw_offset") block_.raw_offset = u;
      else if (k == "raw_size") block_.raw_size = u;
      else if (k == "sha256") str(block_.sha256);
      else if (k == "first_entry") str(block_.first_entry);
      else if (k == "kind") str(block_.kind);
    } else if (c == Ctx::Catalog) {
      if (k == "name") str(m_.catalog.name);
      else if (k == "size") m_.catalog.size = u;
      else if (k == "sha256") str(m_.catalog.sha256);
    } else if (c == Ctx::Sealed) {
      if (k == "name") str(m_.sealed_manifest.name);
      else if (k == "size") m_.sealed_manifest.size = u;
      else if (k == "sha256") str(m_.sealed_manifest.sha256);
    } else if (c == Ctx::Continues) {
      if (k == "offset") block_.cont_offset = u;
      else if (k == "size") block_.cont_size = u;
      else if (k == "sparse") block_.cont_sparse = u != 0;
    }
  }

  bool open(Type t) {
    Frame& fr = stack_.back();
    const char* found = type_name(t);
    Ctx next = Ctx::Skip;
    switch (fr.ctx) {
      case Ctx::Skip:
        if (++fr.skip_depth > kMaxSkipDepth) return fail(path(key_) + ": nested too deeply");
        return true;
      case Ctx::Top:
        if (t != Type::Object) return fail("not a pbackup manifest (the top level is not a JSON object)");
        next = Ctx::Root;
        break;
      case Ctx::Sources:
      case Ctx::Damaged: return fail(path("") + ": expected a string, found " + found);
      case Ctx::Fragments:
        if (t != Type::Object) return fail(path("") + ": expected an object, found " + found);
        frag_ = Fragment{};
        next = Ctx::Fragment;
        break;
      case Ctx::Chain:
        if (t != Type::Object) return fail(path("") + ": expected an object, found " + found);
        frag_ = Fragment{};
        next = Ctx::ChainLink;
        break;
      case Ctx::Blocks:
        if (t != Type::Object) return fail(path("") + ": expected an object, found " + found);
        block_ = ManifestBlock{};
        next = Ctx::Block;
        break;
      case Ctx::Warnings:
        if (t != Type::Object) return fail(path("") + ": expected an object, found " + found);
        warning_ = ManifestWarning{};
        next = Ctx::Warning;
        break;
      default: {  // an object's field
        if (field_ < 0) {
          stack_.push_back({Ctx::Skip, 0, 1});
          return true;
        }
        auto [fields, n] = fields_of(fr.ctx);
        const Field& f = fields[field_];
        if (f.type != t) return mismatch(f, found);
        std::string_view k = f.name;
        if (fr.ctx == Ctx::Root)
          next = k == "sources" ? Ctx::Sources : k == "damaged" ? Ctx::Damaged : k == "fragments" ? Ctx::Fragments : k == "catalog" ? Ctx::Catalog
                 : k == "sealed_manifest" ? Ctx::Sealed : k == "warnings" ? Ctx::Warnings : k == "chain" ? Ctx::Chain : Ctx::Blocks;
        else if (fr.ctx == Ctx::Block) {
          next = Ctx::Continues;
          block_.continues = true;
        }
      }
    }
    stack_.push_back({next});
    field_ = -1;
    return true;
  }

  bool close() {
    Frame& fr = stack_.back();
    if (fr.ctx == Ctx::Skip && --fr.skip_depth > 0) return true;
    auto [fields, n] = fields_of(fr.ctx);
    for (size_t i = 0; i < n; ++i)
      if (fields[i].required && !(fr.seen & (1u << i))) {
        if (fr.ctx == Ctx::Root && i == 0) return fail("not a pbackup manifest (no \"pbackup_manifest\" key)");
        return fail((fr.ctx == Ctx::Root ? "" : path("") + ": ") + "missing field \"" + fields[i].name + "\"");
      }
    if (fr.ctx == Ctx::Root && version_ != 1)
      return fail("pbackup_manifest: format version " + std::to_string(version_) + " is not one this pbackup reads (1)");
    if (fr.ctx == Ctx::Fragment) m_.fragments.push_back(std::move(frag_));
    if (fr.ctx == Ctx::ChainLink) m_.chain.push_back(std::move(frag_));
    if (fr.ctx == Ctx::Block) m_.blocks.push_back(std::move(block_));
    if (fr.ctx == Ctx::Warning) m_.warnings.push_back(std::move(warning_));
    stack_.pop_back();
    field_ = -1;
    return true;
  }

  Manifest& m_;
  std::vector<Frame> stack_;
  std::string key_;
  int field_ = -1;
  uint64_t version_ = 0;
  Fragment frag_;
  ManifestBlock block_;
  ManifestWarning warning_;
  std::string error_;
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
  if (m.xattr_entries) o += "  \"xattr_entries\": " + std::to_string(m.xattr_entries) + ",\n";
  if (m.acl_entries) o += "  \"acl_entries\": " + std::to_string(m.acl_entries) + ",\n";
  if (m.sparse_entries) o += "  \"sparse_entries\": " + std::to_string(m.sparse_entries) + ",\n";
  if (!m.encryption.empty())
    o += "  \"encryption\": " + esc(m.encryption) + ",\n  \"encrypted_size\": " + std::to_string(m.encrypted_size) + ",\n";
  if (!m.sealed_manifest.name.empty())
    o += "  \"sealed_manifest\": {\"name\": " + esc(m.sealed_manifest.name) + ", \"size\": " +
         std::to_string(m.sealed_manifest.size) + ", \"sha256\": " + esc(m.sealed_manifest.sha256) + "},\n";
  o += "  \"sources\": [";
  for (size_t i = 0; i < m.sources.size(); ++i) o += (i ? ", " : "") + esc(m.sources[i]);
  o += "],\n";
  if (!m.damaged.empty()) {  // only when there are any: manifests of clean backups stay as they were
    o += "  \"damaged\": [";
    for (size_t i = 0; i < m.damaged.size(); ++i) o += (i ? ", " : "") + esc(m.damaged[i]);
    o += "],\n";
  }
  if (m.warnings_total) {  // only when there are any, as "damaged"
    o += "  \"warnings_total\": " + std::to_string(m.warnings_total) + ",\n  \"warnings\": [";
    for (size_t i = 0; i < m.warnings.size(); ++i)
      o += std::string(i ? ",\n    " : "\n    ") + "{\"path\": " + esc(m.warnings[i].path) + ", \"reason\": " + esc(m.warnings[i].reason) + "}";
    o += m.warnings.empty() ? "],\n" : "\n  ],\n";
  }
  if (!m.timeline_json.empty()) o += "  \"timeline\": " + m.timeline_json + ",\n";
  if (!m.catalog.name.empty())
    o += "  \"catalog\": {\"name\": " + esc(m.catalog.name) + ", \"size\": " + std::to_string(m.catalog.size) +
         ", \"sha256\": " + esc(m.catalog.sha256) + "},\n";
  if (!m.chain.empty()) {  // an incremental level: the manifests of the levels before it
    o += "  \"chain\": [";
    for (size_t i = 0; i < m.chain.size(); ++i)
      o += std::string(i ? ",\n    " : "\n    ") + "{\"name\": " + esc(m.chain[i].name) + ", \"size\": " + std::to_string(m.chain[i].size) +
           ", \"sha256\": " + esc(m.chain[i].sha256) + "}";
    o += "\n  ],\n";
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
         (b.continues ? ", \"continues\": {\"offset\": " + std::to_string(b.cont_offset) + ", \"size\": " + std::to_string(b.cont_size) +
                           (b.cont_sparse ? ", \"sparse\": 1" : "") + "}"
                         : "") +
         "}" +
         (i + 1 < m.blocks.size() ? ",\n" : "\n");
  }
  o += "  ]\n}\n";
  return o;
}

Manifest manifest_from_json(std::string_view text) {
  std::string upgraded;
  if (!valid_utf8(text)) {
    upgraded = upgrade_raw_strings(text);
    text = upgraded;
  }
  Manifest m;
  Handler h(m);
  bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &h, nlohmann::json::input_format_t::json, true, false);
  if (!ok || !h.error().empty()) throw Fatal(h.error().empty() ? "not valid JSON" : h.error());
  return m;
}

Manifest read_manifest(std::string_view text, const std::string& name) {
  try {
    Manifest m = manifest_from_json(text);
    validate_manifest(m, name);
    return m;
  } catch (const std::bad_alloc&) {
    throw Fatal("manifest " + quote(name) + ": out of memory while reading it (" + std::to_string(text.size()) + " bytes)");
  } catch (const Fatal& f) {
    std::string what = f.what();
    if (what.rfind("manifest " + quote(name) + ": ", 0) == 0) throw;
    throw Fatal("manifest " + quote(name) + ": " + what);
  } catch (const std::exception&) {
    throw Fatal("manifest " + quote(name) + ": cannot be read (malformed)");
  }
}

std::string checksum_file(const Manifest& m) {
  std::string o;
  for (const auto& f : m.fragments)
    if (!f.sha256.empty()) o += f.sha256 + "  " + f.name + "\n";
  return o;
}

}  // namespace pbackup

namespace pbackup {

Manifest redact_manifest(const Manifest& m) {
  Manifest r = m;
  r.command.clear();
  r.sources.clear();
  r.damaged.clear();
  r.warnings.clear();  // they name files; warnings_total (a count) stays
  for (auto& b : r.blocks) {  // first names, the sizes of big files, and the hashes of the
    // plaintext (compressed) blocks: a known file's blocks hash the same in anyone's backup
    b.first_entry.clear();
    b.sha256.clear();
    b.continues = b.cont_sparse = false;
    b.cont_offset = b.cont_size = 0;
  }
  return r;
}

}  // namespace pbackup
