// See s3_credentials.h.
#include "dest/s3_credentials.h"

#include <curl/curl.h>
#include <sys/wait.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <sstream>
#include <vector>

#include "dest/s3_client.h"
#include "pbackup/error.h"

namespace pbackup {

namespace {

std::string env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// Text that goes into an HTTP header (a key id, a session token, IMDS's token) or a URL path
// (IMDS's role name) is visible ASCII only: a CR or LF from a hostile answer would add headers.
bool header_safe(std::string_view s) {
  for (unsigned char ch : s)
    if (ch < 0x21 || ch > 0x7e) return false;
  return true;
}
bool role_name_ok(std::string_view s) {  // IAM: letters, digits and +=,.@_-
  for (unsigned char ch : s)
    if (!std::isalnum(ch) && std::string_view("+=,.@_-").find(static_cast<char>(ch)) == std::string_view::npos) return false;
  return !s.empty() && s.size() <= 128;
}
S3Credentials checked(S3Credentials c, const std::string& what) {
  if (!header_safe(c.access_key) || !header_safe(c.session_token))
    throw Fatal(what + ": the credentials hold characters a request header cannot carry (refused)");
  return c;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A small file (config, token), at most 1 MiB; nullopt when it does not exist.
std::optional<std::string> read_small(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::string s;
  char buf[65536];
  while (f.read(buf, sizeof buf) || f.gcount() > 0) {
    s.append(buf, static_cast<size_t>(f.gcount()));
    if (s.size() > (1u << 20)) throw Fatal(path + ": larger than 1 MiB, not an AWS config or token file");
  }
  return s;
}

std::string home_file(const char* var, const char* rel) {
  std::string v = env(var);
  if (!v.empty()) return v;
  std::string home = env("HOME");
  return home.empty() ? "" : home + "/" + rel;
}

int64_t expiry_of(const std::string& iso, const std::string& what) {
  std::string t = iso;
  if (t.size() > 6 && t.compare(t.size() - 6, 6, "+00:00") == 0) t = t.substr(0, t.size() - 6) + "Z";
  std::optional<int64_t> e = parse_s3_time(t);
  if (!e) throw Fatal(what + ": unreadable expiration time '" + iso + "'");
  return *e;
}

// ---- a small libcurl request for STS and IMDS ----
struct Http {
  long status = 0;
  std::string body;
};
size_t take(char* p, size_t s, size_t n, void* ud) {
  auto* b = static_cast<std::string*>(ud);
  if (b->size() + s * n > (1u << 20)) return 0;  // a credentials answer is small
  b->append(p, s * n);
  return s * n;
}
Http http(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
          const std::string& body, long timeout_s, const std::string& ca_bundle, const std::string& what) {
  std::unique_ptr<CURL, void (*)(CURL*)> c(curl_easy_init(), curl_easy_cleanup);
  if (!c) throw Fatal(what + ": cannot create a libcurl handle");
  curl_slist* list = nullptr;
  for (auto& h : headers) list = curl_slist_append(list, h.c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> hl(list, curl_slist_free_all);
  Http r;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, timeout_s);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, timeout_s * 3);
  curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, hl.get());
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, take);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "pbackup");
  if (!ca_bundle.empty()) curl_easy_setopt(c.get(), CURLOPT_CAINFO, ca_bundle.c_str());
  if (method == "PUT") {
    curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (method == "POST") {
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) throw Fatal(what + " at " + url + ": " + curl_easy_strerror(rc));
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

// <Credentials> of an AssumeRoleWithWebIdentity answer (or the <Error>'s Code and Message).
std::string xml_path(const std::string& doc, std::initializer_list<const char*> path) {
  pugi::xml_document d;
  if (!d.load_buffer(doc.data(), doc.size())) return "";
  pugi::xml_node n = d.document_element();
  for (const char* p : path) n = n.child(p);
  return trim(n.child_value());
}

std::string form_encode(const std::string& s) { return s3_uri_encode(s, false); }

}  // namespace

IniSections parse_ini(std::string_view text, const std::string& file) {
  IniSections out;
  std::string section, parent;  // parent: a key with an empty value, for indented sub-keys
  bool have_section = false;
  size_t lineno = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++lineno;
    auto bad = [&](const std::string& why) { return Fatal(file + ":" + std::to_string(lineno) + ": " + why); };
    bool indented = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      if (line.back() != ']') throw bad("a section header must end with ']'");
      section = trim(std::string_view(line).substr(1, line.size() - 2));
      if (section.empty()) throw bad("empty section name");
      out[section];
      have_section = true;
      parent.clear();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) throw bad("expected 'key = value' or '[section]'");
    if (!have_section) throw bad("a setting before the first [section]");
    std::string key = lower(trim(std::string_view(line).substr(0, eq)));
    std::string value = trim(std::string_view(line).substr(eq + 1));
    if (key.empty()) throw bad("empty key");
    if (indented && !parent.empty()) {
      out[section][parent + "." + key] = value;
      continue;
    }
    if (indented) throw bad("an indented setting without a parent key ('s3 =' above it)");
    parent = value.empty() ? key : "";
    out[section][key] = value;
  }
  return out;
}

std::string AwsProfile::get(const std::string& key) const {
  auto it = credentials.find(key);
  if (it != credentials.end()) return it->second;
  it = config.find(key);
  return it == config.end() ? "" : it->second;
}

AwsProfile load_aws_profile() {
  AwsProfile p;
  p.name = !env("AWS_PROFILE").empty() ? env("AWS_PROFILE") : !env("AWS_DEFAULT_PROFILE").empty() ? env("AWS_DEFAULT_PROFILE") : "default";
  p.config_file = home_file("AWS_CONFIG_FILE", ".aws/config");
  p.credentials_file = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  if (!p.config_file.empty())
    if (auto t = read_small(p.config_file)) {
      IniSections s = parse_ini(*t, p.config_file);
      auto it = s.find(p.name == "default" ? "default" : "profile " + p.name);
      if (it == s.end() && p.name != "default") it = s.find(p.name);
      if (it != s.end()) p.config = it->second;
    }
  if (!p.credentials_file.empty())
    if (auto t = read_small(p.credentials_file)) {
      IniSections s = parse_ini(*t, p.credentials_file);
      auto it = s.find(p.name);
      if (it != s.end()) p.credentials = it->second;
    }
  return p;
}

S3Credentials credentials_from_process(const std::string& command) {
  const std::string what = "credential_process '" + command + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> f(::popen(command.c_str(), "r"), ::pclose);
  if (!f) throw Fatal(what + ": cannot run it");
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f.get())) > 0;) {
    out.append(buf, n);
    if (out.size() > (1u << 20)) throw Fatal(what + ": more than 1 MiB of output");
  }
  int st = ::pclose(f.release());
  if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    throw Fatal(what + " failed (exit status " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : -1) + ")");
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Fatal(what + ": its output is not a JSON object");
  if (!j.contains("Version") || j["Version"] != 1) throw Fatal(what + ": expected \"Version\": 1");
  S3Credentials c;
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  c.access_key = str("AccessKeyId");
  c.secret_key = str("SecretAccessKey");
  c.session_token = str("SessionToken");
  if (c.access_key.empty() || c.secret_key.empty()) throw Fatal(what + ": no AccessKeyId or SecretAccessKey");
  if (!str("Expiration").empty()) c.expires = expiry_of(str("Expiration"), what);
  c.source = "credential_process";
  return checked(std::move(c), what);
}

S3Credentials credentials_from_web_identity(const std::string& token_file, const std::string& role_arn,
                                            const std::string& session_name, const std::string& sts_endpoint,
                                            const std::string& ca_bundle) {
  const std::string what = "STS AssumeRoleWithWebIdentity (" + role_arn + ")";
  std::optional<std::string> token = read_small(token_file);
  if (!token) throw Fatal(what + ": cannot read the web identity token file " + token_file);
  std::string body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(role_arn) +
                     "&RoleSessionName=" + form_encode(session_name) + "&WebIdentityToken=" + form_encode(trim(*token));
  Http r = http("POST", sts_endpoint + "/", {"Content-Type: application/x-www-form-urlencoded", "Accept: application/xml"}, body, 5,
                ca_bundle, what);
  if (r.status != 200)
    throw Fatal(what + " at " + sts_endpoint + ": HTTP " + std::to_string(r.status) + " " + xml_path(r.body, {"Error", "Code"}) + ": " +
                xml_path(r.body, {"Error", "Message"}));
  auto cred = [&](const char* name) { return xml_path(r.body, {"AssumeRoleWithWebIdentityResult", "Credentials", name}); };
  S3Credentials c;
  c.access_key = cred("AccessKeyId");
  c.secret_key = cred("SecretAccessKey");
  c.session_token = cred("SessionToken");
  if (c.access_key.empty() || c.secret_key.empty() || c.session_token.empty()) throw Fatal(what + ": no credentials in the answer");
  c.expires = expiry_of(cred("Expiration"), what);
  c.source = "web identity (" + role_arn + ")";
  return checked(std::move(c), what);
}

S3Credentials credentials_from_imds(const std::string& endpoint) {
  const std::string what = "EC2 instance metadata (IMDSv2)";
  Http t = http("PUT", endpoint + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds: 21600"}, "", 1, "", what);
  if (t.status != 200 || t.body.empty()) throw Fatal(what + " at " + endpoint + ": no session token (HTTP " + std::to_string(t.status) + ")");
  if (t.body.size() > 4096 || !header_safe(t.body)) throw Fatal(what + " at " + endpoint + ": the session token is not a header value (refused)");
  std::string h = "X-aws-ec2-metadata-token: " + t.body;
  Http role = http("GET", endpoint + "/latest/meta-data/iam/security-credentials/", {h}, "", 1, "", what);
  std::string name = trim(role.body.substr(0, role.body.find('\n')));
  if (role.status != 200 || name.empty())
    throw Fatal(what + " at " + endpoint + ": no IAM role attached to this instance (HTTP " + std::to_string(role.status) + ")");
  if (!role_name_ok(name)) throw Fatal(what + " at " + endpoint + ": the role name is not an IAM role name (refused)");
  Http cr = http("GET", endpoint + "/latest/meta-data/iam/security-credentials/" + name, {h}, "", 1, "", what);
  nlohmann::json j = nlohmann::json::parse(cr.body, nullptr, false);
  if (cr.status != 200 || j.is_discarded() || !j.is_object()) throw Fatal(what + ": unreadable credentials for role " + name);
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  S3Credentials c;
  c.access_key = str("AccessKeyId");
  c.secret_key = str("SecretAccessKey");
  c.session_token = str("Token");
  if (c.access_key.empty() || c.secret_key.empty()) throw Fatal(what + ": no credentials for role " + name);
  c.expires = str("Expiration").empty() ? 0 : expiry_of(str("Expiration"), what);
  c.source = "instance metadata (role " + name + ")";
  return checked(std::move(c), what);
}

namespace {

// Where the temporary credentials come from, or nothing: web identity, process, IMDS.
std::function<S3Credentials()> temporary_source(const AwsProfile& p, const std::string& region, const std::string& ca_bundle) {
  std::string token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), role = env("AWS_ROLE_ARN");
  if (token_file.empty()) token_file = p.get("web_identity_token_file");
  if (role.empty()) role = p.get("role_arn");
  std::string process = p.get("credential_process");
  if (!process.empty()) return [process] { return credentials_from_process(process); };
  if (!token_file.empty() && !role.empty()) {
    std::string session = !env("AWS_ROLE_SESSION_NAME").empty() ? env("AWS_ROLE_SESSION_NAME") : !p.get("role_session_name").empty() ? p.get("role_session_name") : "pbackup";
    std::string sts = !env("AWS_ENDPOINT_URL_STS").empty() ? env("AWS_ENDPOINT_URL_STS") : "https://sts." + region + ".amazonaws.com";
    while (!sts.empty() && sts.back() == '/') sts.pop_back();
    return [=] { return credentials_from_web_identity(token_file, role, session, sts, ca_bundle); };
  }
  if (lower(env("AWS_EC2_METADATA_DISABLED")) == "true") return {};
  std::string ep = !env("AWS_EC2_METADATA_SERVICE_ENDPOINT").empty() ? env("AWS_EC2_METADATA_SERVICE_ENDPOINT") : "http://169.254.169.254";
  while (!ep.empty() && ep.back() == '/') ep.pop_back();
  return [ep] { return credentials_from_imds(ep); };
}

}  // namespace

S3Credentials resolve_credentials(const AwsProfile& p, const std::string& region, const std::string& ca_bundle) {
  S3Credentials c;
  c.access_key = env("AWS_ACCESS_KEY_ID");
  c.secret_key = env("AWS_SECRET_ACCESS_KEY");
  if (!c.access_key.empty() && !c.secret_key.empty()) {
    c.session_token = env("AWS_SESSION_TOKEN");
    c.source = "environment";
    return c;
  }
  if (!c.access_key.empty() || !c.secret_key.empty())
    throw Fatal(std::string("S3: ") + (c.access_key.empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
                " is not set (set both, and AWS_SESSION_TOKEN for temporary credentials)");
  for (const auto* m : {&p.credentials, &p.config}) {
    auto k = m->find("aws_access_key_id"), s = m->find("aws_secret_access_key");
    if (k != m->end() && s != m->end() && !k->second.empty() && !s->second.empty()) {
      c.access_key = k->second;
      c.secret_key = s->second;
      auto t = m->find("aws_session_token");
      c.session_token = t == m->end() ? "" : t->second;
      c.source = "profile " + p.name + " in " + (m == &p.credentials ? p.credentials_file : p.config_file);
      return c;
    }
  }
  std::function<S3Credentials()> f = temporary_source(p, region, ca_bundle);
  std::string tried = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, profile '" + p.name + "' has no keys in " +
                      (p.credentials_file.empty() ? "~/.aws/credentials" : p.credentials_file) + " or " +
                      (p.config_file.empty() ? "~/.aws/config" : p.config_file) +
                      ", no credential_process or web identity, instance metadata ";
  if (!f) throw Fatal("S3: no credentials: " + tried + "disabled (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  try {
    return f();
  } catch (const Fatal& e) {
    if (p.get("credential_process").empty() && env("AWS_WEB_IDENTITY_TOKEN_FILE").empty() && p.get("web_identity_token_file").empty())
      throw Fatal("S3: no credentials: " + tried + "failed: " + e.what() + " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    throw;
  }
}

std::function<S3Credentials()> credentials_refresher(const AwsProfile& p, const std::string& region,
                                                     const std::string& ca_bundle, const S3Credentials& got) {
  if (got.expires == 0) return {};
  return temporary_source(p, region, ca_bundle);
}

}  // namespace pbackup
