// S3 client on libcurl (see s3_client.h). libcurl computes the SigV4 signature; this file builds
// canonical URLs, the payload hash header, the retry loop and readable error messages.
#include "dest/s3_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <pugixml.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/version.h"

namespace pbackup {

namespace {

using Clock = std::chrono::steady_clock;

// ---- small string helpers ---------------------------------------------------------------------

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// A whole number of seconds (or attempts) from the environment, in [lo, hi]; `def` when unset.
long env_number(const char* name, long def, long lo, long hi) {
  std::string v = env(name);
  if (v.empty()) return def;
  long n = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || n < lo || n > hi)
    throw Fatal(std::string(name) + "='" + v + "': expected a whole number from " + std::to_string(lo) + " to " +
                std::to_string(hi));
  return n;
}

std::mutex notify_mu;
std::function<void(const std::string&)> notify_sink;

// The digest of `data` in lower-case hex, or "" when OpenSSL fails.
std::string digest_hex(std::string_view data, const EVP_MD* type) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), md, &n, type, nullptr) != 1) return "";
  static const char* hexd = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned i = 0; i < n; ++i) {
    out[2 * i] = hexd[md[i] >> 4];
    out[2 * i + 1] = hexd[md[i] & 15];
  }
  return out;
}

std::string sha256_hex_evp(std::string_view data) {
  std::string h = digest_hex(data, EVP_sha256());
  if (h.empty()) throw Fatal("S3: SHA-256 of a request body failed (OpenSSL EVP_Digest)");
  return h;
}

std::string md5_hex(std::string_view data) { return digest_hex(data, EVP_md5()); }

std::string url_decode(std::string_view s, bool plus_is_space) {
  auto hexv = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexv(s[i + 1]) * 16 + hexv(s[i + 2])));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// ---- XML: read with pugixml, written by hand (the few request bodies are fixed shapes) ------

// The document element of an S3 XML answer, or an empty node when the body is not well-formed
// XML. pugixml resolves the predefined and numeric entities and never reads a DTD.
struct Xml {
  pugi::xml_document doc;
  pugi::xml_node root;
  explicit Xml(std::string_view body) {
    if (doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8)) root = doc.document_element();
  }
};

std::string text_of(const pugi::xml_node& parent, const char* name) { return parent.child(name).child_value(); }

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string strip_quotes(std::string s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

bool parse_u64(std::string_view s, uint64_t& v) {
  std::string t = trim(s);
  auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  return r.ec == std::errc() && r.ptr == t.data() + t.size() && !t.empty();
}

// ---- libcurl RAII -----------------------------------------------------------------------------

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw Fatal("S3: libcurl initialisation failed");
  });
}

// ---- requests ---------------------------------------------------------------------------------

struct Request {
  std::string op;      // "PutObject", ... (for messages)
  std::string method;  // GET HEAD PUT POST DELETE
  std::string bucket;
  std::string key;                                         // raw; empty for bucket-level requests
  std::vector<std::pair<std::string, std::string>> query;  // raw names and values
  std::string_view body;
  std::string content_type;   // set for requests with a body
  std::string range;          // "bytes=a-b" or empty
  uint64_t expect_bytes = 0;  // expected response size (for the total timeout), 0 = unknown
  bool error_in_200 = false;  // a 200 may carry <Error> (CompleteMultipartUpload)
  bool if_none_match = false;  // If-None-Match: * (conditional write)
  std::vector<std::string> headers;  // more "Name: value" headers (signed with the rest)
};

// base64 of the bytes a hex string spells ("" if it is not hex)
std::string hex_to_base64(const std::string& hex) {
  if (hex.size() % 2) return "";
  std::string bin;
  for (size_t i = 0; i < hex.size(); i += 2) {
    unsigned v = 0;
    auto r = std::from_chars(hex.data() + i, hex.data() + i + 2, v, 16);
    if (r.ec != std::errc() || r.ptr != hex.data() + i + 2) return "";
    bin.push_back(static_cast<char>(v));
  }
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bin.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bin[i]) << 16;
    if (i + 1 < bin.size()) n |= static_cast<uint8_t>(bin[i + 1]) << 8;
    if (i + 2 < bin.size()) n |= static_cast<uint8_t>(bin[i + 2]);
    out.push_back(t[(n >> 18) & 63]);
    out.push_back(t[(n >> 12) & 63]);
    out.push_back(i + 1 < bin.size() ? t[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < bin.size() ? t[n & 63] : '=');
  }
  return out;
}

Request make_request(std::string op, std::string method, const std::string& bucket,
                     const std::string& key) {
  Request r;
  r.op = std::move(op);
  r.method = std::move(method);
  r.bucket = bucket;
  r.key = key;
  return r;
}

struct Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  int attempts = 0;
  double seconds = 0;
  // error details when the request failed for good (status not 2xx or <Error> in the body)
  bool failed = false;
  std::string code, message, request_id;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct Transfer {
  std::string_view upload;
  size_t upload_pos = 0;
  std::string* body = nullptr;
  std::map<std::string, std::string>* headers = nullptr;
};

size_t read_cb(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t want = size * n;
  size_t left = t->upload.size() - t->upload_pos;
  size_t k = std::min(want, left);
  std::memcpy(buf, t->upload.data() + t->upload_pos, k);
  t->upload_pos += k;
  return k;
}

int seek_cb(void* ud, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(ud);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->upload.size())
    return CURL_SEEKFUNC_CANTSEEK;
  t->upload_pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t write_cb(char* ptr, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t k = size * n;
  try {
    t->body->append(ptr, k);
  } catch (...) {
    return 0;
  }
  return k;
}

size_t header_cb(char* ptr, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t k = size * n;
  try {
    std::string_view line(ptr, k);
    if (line.substr(0, 5) == "HTTP/") {  // a new response (after 100 Continue): start over
      t->headers->clear();
    } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      std::string name = lower(trim(line.substr(0, colon)));
      std::string value = trim(line.substr(colon + 1));
      uint64_t len = 0;
      if (name == "content-length" && t->body && t->body->empty() && parse_u64(value, len) &&
          len <= (uint64_t(1) << 32))
        t->body->reserve(static_cast<size_t>(len));  // one allocation for big objects
      (*t->headers)[std::move(name)] = std::move(value);
    }
  } catch (...) {
    return 0;
  }
  return k;
}

bool transient_curl(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
      return true;
    default:
      return false;
  }
}

bool transient_http(long status, const std::string& code) {
  if (status == 501 || code == "NotImplemented") return false;  // a feature the server lacks
  if (status >= 500 || status == 429 || status == 408) return true;
  return code == "RequestTimeout" || code == "SlowDown" || code == "InternalError" ||
         code == "ServiceUnavailable" || code == "Throttling" || code == "RequestLimitExceeded";
}

std::string hint(const std::string& code) {
  if (code == "SignatureDoesNotMatch")
    return " (the secret key does not match the access key, the access key is unknown (some "
           "servers, e.g. Swift, say so this way), or the region is wrong: check "
           "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and --s3-region/AWS_REGION)";
  if (code == "InvalidAccessKeyId") return " (unknown access key: check AWS_ACCESS_KEY_ID)";
  if (code == "AccessDenied") return " (these credentials may not do this on this bucket)";
  if (code == "NoSuchBucket")
    return " (the bucket does not exist: create it first or fix the name)";
  if (code == "EntityTooSmall")
    return " (every multipart part but the last must be at least 5 MiB)";
  if (code == "RequestTimeTooSkewed") return " (this machine's clock is wrong)";
  if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect")
    return " (the bucket is in another region: set --s3-region/AWS_REGION)";
  if (code == "ExpiredToken" || code == "InvalidToken")
    return " (the session token has expired or is invalid: renew AWS_SESSION_TOKEN)";
  if (code == "NoSuchUpload") return " (the multipart upload was completed or aborted already)";
  if (code == "InvalidPart") return " (a part's ETag or number does not match an uploaded part)";
  if (code == "BadDigest" || code == "XAmzContentSHA256Mismatch")
    return " (the body was damaged in transit)";
  return "";
}

std::string plural(int n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

}  // namespace

S3ListPage parse_list_objects_page(std::string_view doc) {
  Xml x(doc);
  if (std::string_view(x.root.name()) != "ListBucketResult") throw Fatal("the response is not a ListBucketResult");
  S3ListPage page;
  bool url_encoded = text_of(x.root, "EncodingType") == "url";
  for (pugi::xml_node c : x.root.children("Contents")) {
    S3Object o;
    pugi::xml_node k = c.child("Key"), s = c.child("Size");
    if (!k || !s || !parse_u64(s.child_value(), o.size)) throw Fatal("malformed <Contents> entry");
    o.key = url_encoded ? url_decode(k.child_value(), true) : std::string(k.child_value());
    o.etag = strip_quotes(text_of(c, "ETag"));
    page.objects.push_back(std::move(o));
  }
  page.truncated = trim(text_of(x.root, "IsTruncated")) == "true";
  page.next_token = text_of(x.root, "NextContinuationToken");
  return page;
}

S3UploadsPage parse_list_uploads_page(std::string_view doc) {
  Xml x(doc);
  if (std::string_view(x.root.name()) != "ListMultipartUploadsResult") throw Fatal("the response is not a ListMultipartUploadsResult");
  S3UploadsPage page;
  bool url_encoded = text_of(x.root, "EncodingType") == "url";
  for (pugi::xml_node c : x.root.children("Upload")) {
    S3Upload u;
    pugi::xml_node k = c.child("Key");
    std::string id = text_of(c, "UploadId");
    if (!k || id.empty()) throw Fatal("malformed <Upload> entry");
    u.key = url_encoded ? url_decode(k.child_value(), true) : std::string(k.child_value());
    u.upload_id = id;
    u.initiated = trim(text_of(c, "Initiated"));
    page.uploads.push_back(std::move(u));
  }
  page.truncated = trim(text_of(x.root, "IsTruncated")) == "true";
  page.next_key_marker = text_of(x.root, "NextKeyMarker");
  if (url_encoded) page.next_key_marker = url_decode(page.next_key_marker, true);
  page.next_upload_id_marker = text_of(x.root, "NextUploadIdMarker");
  return page;
}

std::optional<int64_t> parse_s3_time(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fff]Z
  auto num = [&](size_t at, size_t n, int& v) {
    if (at + n > t.size()) return false;
    v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (t.size() < 20 || !num(0, 4, y) || t[4] != '-' || !num(5, 2, mo) || t[7] != '-' || !num(8, 2, d) ||
      (t[10] != 'T' && t[10] != ' ') || !num(11, 2, h) || t[13] != ':' || !num(14, 2, mi) || t[16] != ':' ||
      !num(17, 2, se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t i = 19;
  if (t[i] == '.') {
    ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  }
  if (i + 1 != t.size() || t[i] != 'Z') return std::nullopt;
  // days from civil (H. Hinnant's algorithm)
  int yy = y - (mo <= 2);
  int era = (yy >= 0 ? yy : yy - 399) / 400;
  int yoe = yy - era * 400;
  int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = int64_t(era) * 146097 + doe - 719468;
  return days * 86400 + h * 3600 + mi * 60 + se;
}

std::string multipart_etag(const std::vector<std::string>& part_etags) {
  std::string bin;
  auto hexv = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (const auto& e : part_etags) {
    if (e.size() != 32) return "";
    for (size_t i = 0; i < 32; i += 2) {
      int a = hexv(e[i]), b = hexv(e[i + 1]);
      if (a < 0 || b < 0) return "";
      bin.push_back(static_cast<char>(a * 16 + b));
    }
  }
  if (part_etags.empty()) return "";
  return md5_hex(bin) + "-" + std::to_string(part_etags.size());
}

void set_s3_notify(std::function<void(const std::string&)> f) {
  std::lock_guard<std::mutex> l(notify_mu);
  notify_sink = std::move(f);
}

// ---- public helpers ---------------------------------------------------------------------------

std::string s3_uri_encode(std::string_view s, bool keep_slash) {
  static const char* hexd = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hexd[c >> 4]);
      out.push_back(hexd[c & 15]);
    }
  }
  return out;
}

S3Config S3Config::from_env(const std::string& endpoint_flag, const std::string& region_flag,
                           const std::string& addressing_flag) {
  S3Config c;
  AwsProfile profile = load_aws_profile();
  c.region = !region_flag.empty()                 ? region_flag
             : !env("AWS_REGION").empty()         ? env("AWS_REGION")
             : !env("AWS_DEFAULT_REGION").empty() ? env("AWS_DEFAULT_REGION")
             : !profile.config["region"].empty()  ? profile.config["region"]
                                                  : "us-east-1";
  for (char ch : c.region)
    if (!(std::islower(static_cast<unsigned char>(ch)) ||
          std::isdigit(static_cast<unsigned char>(ch)) || ch == '-'))
      throw Fatal("S3: invalid region '" + c.region + "' (expected something like us-east-1)");
  if (c.region.empty()) throw Fatal("S3: empty region");

  bool default_endpoint = false;
  c.endpoint = !endpoint_flag.empty()                       ? endpoint_flag
               : !env("AWS_ENDPOINT_URL_S3").empty()        ? env("AWS_ENDPOINT_URL_S3")
               : !env("AWS_ENDPOINT_URL").empty()           ? env("AWS_ENDPOINT_URL")
               : !profile.config["s3.endpoint_url"].empty() ? profile.config["s3.endpoint_url"]
                                                            : profile.config["endpoint_url"];
  if (c.endpoint.empty()) {
    c.endpoint = "https://s3." + c.region + ".amazonaws.com";
    default_endpoint = true;
  }
  std::string lo = lower(c.endpoint);
  if (lo.rfind("http://", 0) != 0 && lo.rfind("https://", 0) != 0)
    throw Fatal("S3: endpoint '" + c.endpoint + "' must start with http:// or https://");
  size_t host_start = c.endpoint.find("://") + 3;
  size_t host_end = c.endpoint.find_first_of("/?#", host_start);
  std::string authority = c.endpoint.substr(
      host_start, host_end == std::string::npos ? std::string::npos : host_end - host_start);
  if (authority.empty()) throw Fatal("S3: endpoint '" + c.endpoint + "' has no host");
  // anywhere, not only before the first '/': a password may hold '/' (never print the URL then)
  if (c.endpoint.find('@') != std::string::npos)
    throw Fatal(
        "S3: the endpoint URL must not contain credentials (user:password@); use AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY");
  if (host_end != std::string::npos &&
      c.endpoint.find_first_of("?#", host_end) != std::string::npos)
    throw Fatal("S3: endpoint '" + c.endpoint + "' must not have a query or fragment");
  c.path_style = !default_endpoint;
  std::string style = !addressing_flag.empty() ? addressing_flag : profile.config["s3.addressing_style"];
  if (style == "path") c.path_style = true;
  else if (style == "virtual") c.path_style = false;
  else if (!style.empty() && style != "auto")
    throw Fatal("S3 addressing style '" + style + "' (--s3-addressing or s3.addressing_style in " + profile.config_file +
                "): expected path, virtual or auto");

  c.ca_bundle = !env("AWS_CA_BUNDLE").empty() ? env("AWS_CA_BUNDLE") : profile.config["ca_bundle"];
  std::string mode = env("AWS_RETRY_MODE");
  if (!mode.empty() && mode != "legacy" && mode != "standard" && mode != "adaptive")
    throw Fatal("AWS_RETRY_MODE='" + mode + "': expected legacy, standard or adaptive");
  c.max_attempts = static_cast<int>(env_number("AWS_MAX_ATTEMPTS", mode == "standard" || mode == "adaptive" ? 3 : 5, 1, 100));
  c.retry_budget_s = env_number("PBACKUP_S3_RETRY_SECONDS", c.retry_budget_s, 0, 86400);
  c.connect_timeout_s = env_number("PBACKUP_S3_CONNECT_SECONDS", c.connect_timeout_s, 1, 3600);
  c.stall_timeout_s = env_number("PBACKUP_S3_STALL_SECONDS", c.stall_timeout_s, 1, 3600);
  c.request_timeout_s = env_number("PBACKUP_S3_TIMEOUT_SECONDS", c.request_timeout_s, 1, 86400);
  {
    std::lock_guard<std::mutex> l(notify_mu);
    c.notify = notify_sink;
  }
  S3Credentials cr;
  try {
    cr = resolve_credentials(profile, c.region, c.ca_bundle);
  } catch (const Fatal& e) {
    throw Fatal(std::string(e.what()) + " [for " + c.endpoint + "]");
  }
  c.access_key = cr.access_key;
  c.secret_key = cr.secret_key;
  c.session_token = cr.session_token;
  c.expires = cr.expires;
  c.refresh = credentials_refresher(profile, c.region, c.ca_bundle, cr);
  return c;
}

S3Url S3Url::parse(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Fatal("invalid S3 URL '" + url + "': " + why + " (expected s3://bucket/prefix)");
  };
  if (lower(url.substr(0, 5)) != "s3://") throw bad("it does not start with s3://");
  std::string rest = url.substr(5);
  size_t slash = rest.find('/');
  S3Url u;
  u.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) u.key = rest.substr(slash + 1);
  if (u.bucket.empty()) throw bad("no bucket name");
  if (u.bucket.size() > 255) throw bad("bucket name longer than 255 characters");
  for (unsigned char c : u.bucket)
    if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_') || c >= 0x80)
      throw bad("bucket names may only have letters, digits, '-', '.' and '_'");
  for (unsigned char c : u.key)
    if (c < 0x20 || c == 0x7F) throw bad("control character in the key");
  if (u.key.size() > 1024) throw bad("key longer than 1024 bytes");
  return u;
}

// ---- the client -------------------------------------------------------------------------------

struct S3Client::Impl {
  S3Config cfg;
  std::string scheme, authority, base_path;  // endpoint split up
  std::string sigv4;                         // "aws:amz:REGION:s3"
  std::string user_agent = std::string("pbackup/") + version_string();
  std::mutex mu;
  std::vector<CurlPtr> idle;  // pooled handles (keep their connections)

  explicit Impl(S3Config c) : cfg(std::move(c)) {
    global_init();
    if (cfg.endpoint.empty()) cfg.endpoint = "https://s3." + cfg.region + ".amazonaws.com";
    while (!cfg.endpoint.empty() && cfg.endpoint.back() == '/') cfg.endpoint.pop_back();
    size_t p = cfg.endpoint.find("://");
    if (p == std::string::npos) throw Fatal("S3: endpoint '" + cfg.endpoint + "' has no scheme");
    scheme = lower(cfg.endpoint.substr(0, p));
    if (scheme != "http" && scheme != "https")
      throw Fatal("S3: endpoint '" + cfg.endpoint + "' must start with http:// or https://");
    size_t h = p + 3, e = cfg.endpoint.find('/', h);
    authority = cfg.endpoint.substr(h, e == std::string::npos ? std::string::npos : e - h);
    base_path = e == std::string::npos ? "" : cfg.endpoint.substr(e);
    if (authority.empty() || authority.find('@') != std::string::npos)
      throw Fatal("S3: endpoint must be scheme://host[:port][/path] without credentials");
    if (cfg.region.empty() || cfg.region.find(':') != std::string::npos)
      throw Fatal("S3: invalid region '" + cfg.region + "'");
    if (cfg.max_attempts < 1) cfg.max_attempts = 1;
    sigv4 = "aws:amz:" + cfg.region + ":s3";
  }

  CurlPtr acquire() {
    {
      std::lock_guard<std::mutex> l(mu);
      if (!idle.empty()) {
        CurlPtr c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    CurlPtr c(curl_easy_init());
    if (!c) throw Fatal("S3: cannot create a libcurl handle (out of memory?)");
    return c;
  }
  void release(CurlPtr c) {
    std::lock_guard<std::mutex> l(mu);
    if (idle.size() < 32) idle.push_back(std::move(c));
  }

  bool virtual_host(const std::string& bucket) const {
    return !cfg.path_style && !bucket.empty() && bucket.find('.') == std::string::npos;
  }

  std::string url_for(const Request& r, std::string* canonical_query) const {
    std::string url = scheme + "://";
    std::string path = base_path;
    if (virtual_host(r.bucket)) {
      url += r.bucket + "." + authority;
      path += "/" + s3_uri_encode(r.key, true);
    } else {
      url += authority;
      path += "/" + s3_uri_encode(r.bucket, false);
      if (!r.key.empty()) path += "/" + s3_uri_encode(r.key, true);
    }
    // canonical query: sorted by encoded name (then value), always name=value
    std::vector<std::pair<std::string, std::string>> q;
    for (auto& [k, v] : r.query) q.emplace_back(s3_uri_encode(k, false), s3_uri_encode(v, false));
    std::sort(q.begin(), q.end());
    std::string qs;
    for (auto& [k, v] : q) qs += (qs.empty() ? "" : "&") + k + "=" + v;
    if (canonical_query) *canonical_query = qs;
    return url + path + (qs.empty() ? "" : "?" + qs);
  }

  std::string target(const Request& r) const {
    std::string key = r.key.size() > 300 ? r.key.substr(0, 300) + "..." : r.key;
    return "s3://" + r.bucket + (key.empty() ? "" : "/" + key);
  }

  // Removes anything secret from a message (belt and braces: none should be there). Secrets
  // shorter than 16 characters are left alone: they could be a word of the message (a secret
  // "bucket" would garble every "s3://bucket/"), and no message is built from a secret.
  std::string scrub(std::string m) const {
    std::lock_guard<std::mutex> l(cred_mu);
    for (const std::string* s : {&cfg.secret_key, &cfg.session_token}) {
      if (s->size() < 16) continue;
      for (size_t p; (p = m.find(*s)) != std::string::npos;) m.replace(p, s->size(), "***");
    }
    return m;
  }

  // An answer's body parsed by `parse` (a listing page), or the request's error with the reason.
  template <class Parse>
  auto parsed(const Request& r, const Response& resp, Parse parse) const {
    try {
      return parse(resp.body);
    } catch (const Fatal& f) {
      fail(r, resp, f.what());
    }
  }

  [[noreturn]] void fail(const Request& r, const Response& resp,
                         const std::string& extra = "") const {
    std::string m = "S3 " + r.op + " " + target(r) + " at " + cfg.endpoint + " failed: HTTP " +
                    std::to_string(resp.status);
    if (!resp.code.empty()) m += " " + resp.code;
    if (!resp.message.empty()) m += ": " + resp.message;
    if (resp.code.empty() && resp.message.empty() && r.method == "HEAD")
      m += " (a HEAD response carries no error details)";
    m += hint(resp.code);
    if (!extra.empty()) m += "; " + extra;
    if (!resp.request_id.empty()) m += " [request id " + resp.request_id + "]";
    m += " (" + plural(resp.attempts, "attempt") + ")";
    throw Fatal(scrub(m));
  }

  void tell(const std::string& m) const {
    if (!cfg.notify) return;
    try {
      cfg.notify(scrub(m));
    } catch (...) {
    }
  }

  // The credentials for a request: temporary ones are renewed 5 minutes before they expire
  // (a long backup outlives a one-hour session).
  mutable std::mutex cred_mu;  // cfg's credentials (renewed while other threads sign)
  struct Creds {
    std::string access, secret, token;
  };
  Creds credentials() {
    std::lock_guard<std::mutex> l(cred_mu);
    if (cfg.refresh && cfg.expires > 0) {
      int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      if (now >= cfg.expires - 300) {
        S3Credentials n = cfg.refresh();  // Fatal propagates: the request cannot be signed
        cfg.access_key = n.access_key;
        cfg.secret_key = n.secret_key;
        cfg.session_token = n.session_token;
        cfg.expires = n.expires;
      }
    }
    return {cfg.access_key, cfg.secret_key, cfg.session_token};
  }

  // One attempt. Returns the curl result; fills resp.
  CURLcode attempt(CURL* c, const Request& r, const std::string& url,
                   const std::string& payload_hash, Response& resp, std::string& curl_error) {
    curl_easy_reset(c);
    const Creds cr = credentials();
    Transfer t;
    t.upload = r.body;
    resp.body.clear();
    resp.headers.clear();
    t.body = &resp.body;
    t.headers = &resp.headers;

    std::vector<std::string> hs = {"x-amz-content-sha256: " + payload_hash};
    if (!cr.token.empty()) hs.push_back("x-amz-security-token: " + cr.token);
    if (!r.content_type.empty()) hs.push_back("Content-Type: " + r.content_type);
    if (!r.range.empty()) hs.push_back("Range: " + r.range);
    if (r.if_none_match) hs.push_back("If-None-Match: *");
    for (const auto& h : r.headers) hs.push_back(h);
    SlistPtr list;
    for (const auto& h : hs) {
      curl_slist* n = curl_slist_append(list.get(), h.c_str());
      if (!n) throw Fatal("S3: out of memory building request headers");
      list.release();
      list.reset(n);
    }

    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // keys with "." or ".." segments stay as signed
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(c, CURLOPT_USERNAME, cr.access.c_str());  // keys may contain ':'
    curl_easy_setopt(c, CURLOPT_PASSWORD, cr.secret.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, cfg.connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, cfg.stall_timeout_s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent.c_str());
    uint64_t moved = r.body.size() + r.expect_bytes;
    if (r.method != "GET" || !r.range.empty() ||
        r.key.empty())  // whole-object GETs: stall check only
      curl_easy_setopt(c, CURLOPT_TIMEOUT,
                       static_cast<long>(cfg.request_timeout_s + (moved >> 20)));
    if (!cfg.ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, cfg.ca_bundle.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);

    if (r.method == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (r.method == "PUT") {
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
      curl_easy_setopt(c, CURLOPT_READDATA, &t);
      curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
      curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      // An upload stops at a signal (the backup is stopping and aborts the multipart upload;
      // a 64 MiB part would hold it past mpirun's SIGKILL). Aborts and deletes are not PUTs.
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, +[](void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
        return interrupted() ? 1 : 0;
      });
    } else if (r.method == "POST") {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, r.body.empty() ? "" : r.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    } else if (r.method == "DELETE") {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    }

    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_error = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    curl_easy_reset(c);  // the pooled handle keeps its connections, no pointers into this frame
    return rc;
  }

  // Runs a request with retries. Returns the final response when the server answered (2xx, or
  // a permanent error with resp.failed set); throws Fatal when transient failures used up the
  // attempts or time budget, or on a permanent transport error.
  Response execute(const Request& r) {
    std::string url = url_for(r, nullptr);
    std::string payload_hash = sha256_hex_evp(r.body);
    Response resp;
    auto t0 = Clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string last;  // description of the last transient failure
    for (int n = 1;; ++n) {
      resp.attempts = n;
      resp.status = 0;
      resp.code.clear();
      resp.message.clear();
      resp.request_id.clear();
      std::string curl_error;
      CurlPtr c = acquire();
      CURLcode rc = attempt(c.get(), r, url, payload_hash, resp, curl_error);
      release(std::move(c));
      resp.seconds = elapsed();

      long retry_after_s = 0;
      if (rc != CURLE_OK) {
        std::string what = rc == CURLE_COULDNT_CONNECT        ? "cannot connect"
                           : rc == CURLE_OPERATION_TIMEDOUT   ? "timed out"
                           : rc == CURLE_COULDNT_RESOLVE_HOST ? "cannot resolve the host"
                                                              : "transfer failed";
        last = what + " (" + curl_error + ")";
        if (!transient_curl(rc)) {
          throw Fatal(scrub("S3 " + r.op + " " + target(r) + " at " + cfg.endpoint +
                            " failed: " + last + " (" + plural(n, "attempt") + ")"));
        }
      } else {
        bool ok2xx = resp.status >= 200 && resp.status < 300;
        bool body_error = ok2xx && r.error_in_200 && std::string_view(Xml(resp.body).root.name()) == "Error";
        if (ok2xx && !body_error) {
          resp.failed = false;
          return resp;
        }
        resp.failed = true;
        Xml err(resp.body);
        resp.code = trim(text_of(err.root, "Code"));
        resp.message = trim(text_of(err.root, "Message"));
        if (resp.message.size() > 500) resp.message = resp.message.substr(0, 500) + "...";
        resp.request_id = resp.header("x-amz-request-id");
        if (resp.code.empty()) resp.code = resp.header("x-amz-error-code");
        if (!transient_http(resp.status, resp.code)) return resp;
        last = "HTTP " + std::to_string(resp.status) + (resp.code.empty() ? "" : " " + resp.code) +
               (resp.message.empty() ? "" : ": " + resp.message);
        uint64_t ra = 0;
        if (parse_u64(resp.header("retry-after"), ra))
          retry_after_s = static_cast<long>(std::min<uint64_t>(ra, 60));
      }

      // transient: back off (a random wait in the upper half of an exponentially growing window,
      // 0.5 s, 1 s, 2 s, ... up to 20 s; at least Retry-After), unless out of attempts or time
      double window = std::min(0.5 * double(1u << std::min(n - 1, 10)), 20.0);
      double wait = std::uniform_real_distribution<double>(window / 2, window)(rng);
      wait = std::max(wait, double(retry_after_s));
      bool budget_left = elapsed() + wait < double(cfg.retry_budget_s);
      // interrupted (a signal): no more retries, the backup is stopping and aborts its upload
      if (interrupted()) throw Fatal(scrub("S3 " + r.op + " " + target(r) + ": " + last + "; interrupted, not retried"));
      if (n >= cfg.max_attempts || !budget_left) {
        std::string why =
            n >= cfg.max_attempts
                ? ""
                : "; retry time limit of " + std::to_string(cfg.retry_budget_s) + " s reached";
        throw Fatal(scrub("S3 " + r.op + " " + target(r) + " at " + cfg.endpoint +
                          " failed after " + plural(n, "attempt") + " in " +
                          fmt_seconds(elapsed()) + why + ": " + last + hint(resp.code)));
      }
      tell("S3 " + r.op + " " + target(r) + ": " + last + "; retrying in " + fmt_seconds(wait) +
           " (attempt " + std::to_string(n + 1) + " of " + std::to_string(cfg.max_attempts) + ")");
      for (auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait));
           Clock::now() < until && !interrupted();)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  Response must(const Request& r) {
    Response resp = execute(r);
    if (resp.failed) fail(r, resp);
    return resp;
  }

  static void check_names(const std::string& op, const std::string& bucket, const std::string& key,
                          bool need_key) {
    if (bucket.empty()) throw Fatal("S3 " + op + ": empty bucket name");
    if (bucket.find('/') != std::string::npos)
      throw Fatal("S3 " + op + ": bucket name '" + bucket + "' contains '/'");
    if (need_key && key.empty())
      throw Fatal("S3 " + op + " s3://" + bucket + "/: empty object key");
  }
};

S3Client::S3Client(S3Config cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {}
S3Client::~S3Client() = default;
S3Client::S3Client(S3Client&&) noexcept = default;
S3Client& S3Client::operator=(S3Client&&) noexcept = default;

const S3Config& S3Client::config() const { return impl_->cfg; }

void S3Client::put_object(const std::string& bucket, const std::string& key,
                          std::string_view body, const std::string& content_type) {
  Impl::check_names("PutObject", bucket, key, true);
  Request r = make_request("PutObject", "PUT", bucket, key);
  r.body = body;
  r.content_type = content_type;
  impl_->must(r);
}

PutResult S3Client::put_object_if_absent(const std::string& bucket, const std::string& key,
                                         std::string_view body, const std::string& content_type) {
  Impl::check_names("PutObject", bucket, key, true);
  Request r = make_request("PutObject (If-None-Match: *)", "PUT", bucket, key);
  r.body = body;
  r.content_type = content_type;
  r.if_none_match = true;
  Response resp = impl_->execute(r);
  if (!resp.failed) return PutResult::Created;
  if (resp.status == 412 || resp.status == 409) {
    // a retry after a lost answer finds our own object: the same bytes have the same MD5 ETag
    if (resp.attempts > 1) {
      std::optional<S3Object> o = head_object(bucket, key);
      if (o && o->size == body.size() && o->etag == md5_hex(body)) return PutResult::Created;
    }
    return PutResult::Exists;
  }
  if (resp.status == 501 || resp.code == "NotImplemented") return PutResult::Unsupported;
  impl_->fail(r, resp);
}

std::string S3Client::get_object(const std::string& bucket, const std::string& key) {
  Impl::check_names("GetObject", bucket, key, true);
  Request r = make_request("GetObject", "GET", bucket, key);
  Response resp = impl_->must(r);
  uint64_t len = 0;
  if (parse_u64(resp.header("content-length"), len) && len != resp.body.size())
    impl_->fail(
        r, resp,
        "received " + std::to_string(resp.body.size()) + " bytes of " + std::to_string(len));
  return std::move(resp.body);
}

std::string S3Client::get_range(const std::string& bucket, const std::string& key, uint64_t offset,
                                uint64_t length) {
  Impl::check_names("GetObject", bucket, key, true);
  if (length == 0) return {};
  if (offset + length < offset)
    throw Fatal("S3 GetObject s3://" + bucket + "/" + key + ": range overflows");
  std::string range = "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  Request r = make_request("GetObject (" + range + ")", "GET", bucket, key);
  r.range = range;
  r.expect_bytes = length;
  Response resp = impl_->execute(r);
  if (resp.failed)
    impl_->fail(r, resp, resp.status == 416 ? "the range starts beyond the end of the object" : "");
  if (resp.status == 200) {  // the server ignored Range and sent the whole object
    if (resp.body.size() < offset + length)
      impl_->fail(r, resp, "the object has only " + std::to_string(resp.body.size()) + " bytes");
    return resp.body.substr(offset, length);
  }
  if (resp.status != 206) impl_->fail(r, resp, "expected 206 Partial Content");
  std::string cr = resp.header("content-range");  // bytes a-b/total
  std::string want = "bytes " + std::to_string(offset) + "-";
  if (resp.body.size() != length || (!cr.empty() && cr.rfind(want, 0) != 0)) {
    impl_->fail(r, resp,
                "short read: got " + std::to_string(resp.body.size()) + " of " +
                    std::to_string(length) + " bytes" +
                    (cr.empty() ? "" : " (Content-Range: " + cr + ")") +
                    " - the object is smaller than the range");
  }
  return std::move(resp.body);
}

std::optional<S3Object> S3Client::head_object(const std::string& bucket, const std::string& key) {
  Impl::check_names("HeadObject", bucket, key, true);
  Request r = make_request("HeadObject", "HEAD", bucket, key);
  Response resp = impl_->execute(r);
  if (resp.failed) {
    // No body in a HEAD error: ask with a 1-byte GET to learn the reason (and whether a 404 is a
    // missing key or a missing bucket).
    Request g = make_request("HeadObject", "GET", bucket, key);
    g.range = "bytes=0-0";
    g.expect_bytes = 1;
    Response why = impl_->execute(g);
    if (!why.failed) {
      if (resp.status == 404) return std::nullopt;  // created in between: report the HEAD's view
      impl_->fail(r, resp);
    }
    if (why.status == 416 && resp.status == 404) return std::nullopt;
    if (why.status == 404 && (why.code == "NoSuchKey" || why.code.empty())) return std::nullopt;
    impl_->fail(r, why);
  }
  S3Object o;
  o.key = key;
  if (!parse_u64(resp.header("content-length"), o.size))
    impl_->fail(r, resp, "no Content-Length in the response");
  o.etag = strip_quotes(resp.header("etag"));
  return o;
}

std::vector<S3Object> S3Client::list_objects(const std::string& bucket, const std::string& prefix,
                                             int page_size) {
  Impl::check_names("ListObjectsV2", bucket, "", false);
  page_size = std::clamp(page_size, 1, 1000);
  std::vector<S3Object> out;
  std::string token;
  for (int page = 0;; ++page) {
    std::string op = prefix.empty() ? "ListObjectsV2" : "ListObjectsV2 (prefix '" + prefix + "')";
    Request r = make_request(op, "GET", bucket, "");
    r.query = {{"list-type", "2"}, {"encoding-type", "url"}};
    if (page_size != 1000) r.query.emplace_back("max-keys", std::to_string(page_size));
    if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    Response resp = impl_->must(r);
    S3ListPage listed = impl_->parsed(r, resp, parse_list_objects_page);
    for (auto& o : listed.objects) out.push_back(std::move(o));
    if (!listed.truncated) break;
    std::string next = listed.next_token;
    if (next.empty() || next == token)
      impl_->fail(r, resp, "the listing is truncated but has no new NextContinuationToken");
    token = next;
  }
  return out;
}

void S3Client::delete_object(const std::string& bucket, const std::string& key) {
  Impl::check_names("DeleteObject", bucket, key, true);
  Request r = make_request("DeleteObject", "DELETE", bucket, key);
  Response resp = impl_->execute(r);
  if (resp.failed && !(resp.status == 404 && resp.code == "NoSuchKey")) impl_->fail(r, resp);
}

std::string S3Client::create_multipart(const std::string& bucket, const std::string& key,
                                       const std::string& content_type, bool* sha256_parts) {
  Impl::check_names("CreateMultipartUpload", bucket, key, true);
  Request r = make_request("CreateMultipartUpload", "POST", bucket, key);
  r.query = {{"uploads", ""}};
  r.content_type = content_type;
  if (sha256_parts) r.headers.push_back("x-amz-checksum-algorithm: SHA256");  // the object's type (and no form type from curl)
  Response resp = impl_->must(r);
  std::string id = trim(text_of(Xml(resp.body).root, "UploadId"));
  if (id.empty()) impl_->fail(r, resp, "no <UploadId> in the response");
  if (sha256_parts) *sha256_parts = resp.header("x-amz-checksum-algorithm") == "SHA256";
  return id;
}

std::string S3Client::upload_part(const std::string& bucket, const std::string& key,
                                  const std::string& upload_id, int part_number,
                                  std::string_view body, const std::string& sha256_hex) {
  Impl::check_names("UploadPart", bucket, key, true);
  std::string op = "UploadPart " + std::to_string(part_number);
  if (part_number < 1 || part_number > 10000)
    throw Fatal("S3 " + op + " s3://" + bucket + "/" + key + ": part numbers go from 1 to 10000");
  if (upload_id.empty())
    throw Fatal("S3 " + op + " s3://" + bucket + "/" + key + ": empty upload id");
  Request r = make_request(op, "PUT", bucket, key);
  r.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}};
  r.body = body;
  if (!sha256_hex.empty()) {
    std::string b64 = hex_to_base64(sha256_hex);
    if (b64.size() != 44) throw Fatal("S3 " + op + " s3://" + bucket + "/" + key + ": malformed part SHA-256");
    r.headers.push_back("x-amz-checksum-sha256: " + b64);
  }
  Response resp = impl_->must(r);
  std::string etag = strip_quotes(resp.header("etag"));
  if (etag.empty()) impl_->fail(r, resp, "no ETag in the response");
  return etag;
}

PutResult S3Client::complete_multipart(const std::string& bucket, const std::string& key,
                                       const std::string& upload_id,
                                       const std::vector<std::pair<int, std::string>>& parts,
                                       bool if_absent, const std::map<int, std::string>& part_sha256_hex) {
  Impl::check_names("CompleteMultipartUpload", bucket, key, true);
  auto sorted = parts;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::string where = " s3://" + bucket + "/" + key;
  if (sorted.empty()) throw Fatal("S3 CompleteMultipartUpload" + where + ": no parts");
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].first < 1 || sorted[i].first > 10000)
      throw Fatal("S3 CompleteMultipartUpload" + where + ": part number " +
                  std::to_string(sorted[i].first) + " is outside 1..10000");
    if (i > 0 && sorted[i].first == sorted[i - 1].first)
      throw Fatal("S3 CompleteMultipartUpload" + where + ": part " +
                  std::to_string(sorted[i].first) + " listed twice");
  }
  std::string xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (auto& [n, etag] : sorted) {
    xml += "<Part><PartNumber>" + std::to_string(n) + "</PartNumber><ETag>\"" + xml_escape(strip_quotes(etag)) + "\"</ETag>";
    if (auto it = part_sha256_hex.find(n); it != part_sha256_hex.end())
      xml += "<ChecksumSHA256>" + hex_to_base64(it->second) + "</ChecksumSHA256>";
    xml += "</Part>";
  }
  xml += "</CompleteMultipartUpload>";
  if (upload_id.empty()) throw Fatal("S3 CompleteMultipartUpload" + where + ": empty upload id");
  Request r = make_request("CompleteMultipartUpload", "POST", bucket, key);
  r.query = {{"uploadId", upload_id}};
  r.body = xml;
  r.content_type = "application/xml";
  r.error_in_200 = true;
  r.if_none_match = if_absent;
  Response resp = impl_->execute(r);
  if (!resp.failed) return PutResult::Created;
  bool exists = resp.status == 412 || resp.status == 409;
  if ((resp.code == "NoSuchUpload" || exists) && resp.attempts > 1) {
    // An earlier attempt may have completed the upload before its answer was lost: the object
    // is ours when its ETag is the one these parts give (or, where part ETags are not MD5s and
    // no condition was asked, when it has as many parts).
    std::optional<S3Object> o = head_object(bucket, key);
    std::vector<std::string> etags;
    for (auto& p : sorted) etags.push_back(strip_quotes(p.second));
    std::string want = multipart_etag(etags);
    std::string suffix = "-" + std::to_string(sorted.size());
    if (o && !want.empty() && o->etag == want) return PutResult::Created;
    if (o && want.empty() && !exists && o->etag.size() > suffix.size() &&
        o->etag.compare(o->etag.size() - suffix.size(), suffix.size(), suffix) == 0)
      return PutResult::Created;
  }
  if (exists) return PutResult::Exists;
  impl_->fail(r, resp);
}

std::vector<S3Upload> S3Client::list_multipart_uploads(const std::string& bucket,
                                                       const std::string& prefix, int page_size) {
  Impl::check_names("ListMultipartUploads", bucket, "", false);
  page_size = std::clamp(page_size, 1, 1000);
  std::vector<S3Upload> out;
  std::string key_marker, id_marker;
  while (true) {
    Request r = make_request("ListMultipartUploads" + (prefix.empty() ? std::string() : " (prefix '" + prefix + "')"), "GET", bucket, "");
    r.query = {{"uploads", ""}};
    if (page_size != 1000) r.query.emplace_back("max-uploads", std::to_string(page_size));
    if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
    if (!key_marker.empty()) r.query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) r.query.emplace_back("upload-id-marker", id_marker);
    Response resp = impl_->must(r);
    S3UploadsPage page = impl_->parsed(r, resp, parse_list_uploads_page);
    for (auto& u : page.uploads) out.push_back(std::move(u));
    if (!page.truncated) break;
    if (page.next_key_marker.empty() ||
        (page.next_key_marker == key_marker && page.next_upload_id_marker == id_marker))
      impl_->fail(r, resp, "the listing is truncated but has no new NextKeyMarker");
    key_marker = page.next_key_marker;
    id_marker = page.next_upload_id_marker;
  }
  return out;
}

bool S3Client::abort_multipart(const std::string& bucket, const std::string& key,
                               const std::string& upload_id) noexcept {
  try {
    Impl::check_names("AbortMultipartUpload", bucket, key, true);
    // never send "?uploadId=" empty: some servers would take the DELETE for the object's
    if (upload_id.empty())
      throw Fatal("S3 AbortMultipartUpload s3://" + bucket + "/" + key + ": empty upload id");
    Request r = make_request("AbortMultipartUpload", "DELETE", bucket, key);
    r.query = {{"uploadId", upload_id}};
    Response resp = impl_->execute(r);
    if (resp.failed && !(resp.status == 404 && resp.code == "NoSuchUpload")) impl_->fail(r, resp);
    return true;
  } catch (const std::exception& e) {
    impl_->tell(e.what());
  } catch (...) {
  }
  return false;
}

LazyS3Client::LazyS3Client(std::string endpoint, std::string region, std::string addressing)
    : endpoint_(std::move(endpoint)), region_(std::move(region)), addressing_(std::move(addressing)) {}
LazyS3Client::~LazyS3Client() = default;

S3Client& LazyS3Client::get() {
  // A failed attempt (no credentials) throws out of call_once and leaves it to be tried again.
  std::call_once(once_, [this] { client_ = std::make_unique<S3Client>(S3Config::from_env(endpoint_, region_, addressing_)); });
  return *client_;
}

CloudPartPlan plan_cloud_parts(uint64_t requested, uint64_t expected, bool split_requested,
                               uint64_t max_parts) {
  constexpr uint64_t kMiB = 1ull << 20, kMaxPart = 5ull << 30, kMaxObject = 5ull << 40;
  CloudPartPlan p{requested, split_requested};
  if (split_requested || max_parts == 0) return p;
  uint64_t need = expected / max_parts + (expected % max_parts != 0);  // smallest part that fits
  need = (need + kMiB - 1) / kMiB * kMiB;
  p.part = std::max(requested, need);
  if (p.part > kMaxPart || expected > kMaxObject) {  // not one object: fragments of one part each
    p.part = std::min(p.part, kMaxPart);
    p.split = true;
  }
  return p;
}

bool is_s3_url(const std::string& s) { return s.rfind("s3://", 0) == 0; }

}  // namespace pbackup
