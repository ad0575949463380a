// Tests of the S3 client (src/dest/s3_client.h) against a real S3 server, normally OpenStack
// Swift + s3api on loopback started by scripts/s3-start.sh (tests/integration/test_s3_client.sh
// does that and sets the environment):
//   S3_TEST_ENDPOINT  e.g. http://127.0.0.1:8080     S3_TEST_KEY     e.g. test:tester
//   S3_TEST_SECRET    e.g. testing                   S3_TEST_BUCKET  an existing bucket
// A missing variable fails the tests that need the server; it never skips them.
// The retry tests use a tiny fake HTTP server on 127.0.0.1 (an ephemeral port) in a thread.
// This file has its own main (DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN): link it with pbackup_core only.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "dest/s3_client.h"
#include "core/cloud_cleanup.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pbackup/error.h"

using namespace pbackup;
using Clock = std::chrono::steady_clock;

namespace {

std::string env_or_empty(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

struct TestEnv {
  S3Config cfg;
  std::string bucket;
};

// The server's settings from the environment; FAILs (REQUIRE) when any is missing.
TestEnv test_env() {
  TestEnv e;
  e.cfg.endpoint = env_or_empty("S3_TEST_ENDPOINT");
  e.cfg.access_key = env_or_empty("S3_TEST_KEY");
  e.cfg.secret_key = env_or_empty("S3_TEST_SECRET");
  e.bucket = env_or_empty("S3_TEST_BUCKET");
  INFO(
      "set S3_TEST_ENDPOINT, S3_TEST_KEY, S3_TEST_SECRET and S3_TEST_BUCKET "
      "(tests/integration/test_s3_client.sh does, after scripts/s3-start.sh)");
  REQUIRE(!e.cfg.endpoint.empty());
  REQUIRE(!e.cfg.access_key.empty());
  REQUIRE(!e.cfg.secret_key.empty());
  REQUIRE(!e.bucket.empty());
  e.cfg.region = "us-east-1";
  e.cfg.max_attempts = 3;
  e.cfg.connect_timeout_s = 5;
  e.cfg.request_timeout_s = 60;
  return e;
}

// A prefix no other run uses.
std::string run_prefix(const std::string& what) {
  static const std::string run = [] {
    std::random_device rd;
    return "s3test-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000) + "/";
  }();
  return run + what + "/";
}

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 r(seed);
  for (auto& c : s) c = static_cast<char>(r() & 0xFF);
  return s;
}

std::string digest_hex(std::string_view data, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, md, nullptr);
  static const char* h = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s.push_back(h[out[i] >> 4]);
    s.push_back(h[out[i] & 15]);
  }
  return s;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Runs f, which must throw pbackup::Fatal; returns its message.
template <class F>
std::string fatal_message(F&& f) {
  try {
    f();
  } catch (const Fatal& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected pbackup::Fatal, got another exception: " << e.what());
    return "";
  }
  FAIL("expected pbackup::Fatal, nothing was thrown");
  return "";
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- a fake HTTP server for retry behaviour ---------------------------------------------------

struct FakeRequest {
  std::string head;  // request line + headers
  std::string body;
};

// respond(hit number from 1, request) -> raw HTTP response; "" = hold the connection 2.5 s and
// close it without answering.
class FakeServer {
 public:
  explicit FakeServer(std::function<std::string(int, const FakeRequest&)> respond)
      : respond_(std::move(respond)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    th_ = std::thread([this] { loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    th_.join();
    ::close(fd_);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int hits() const { return hits_; }
  std::vector<FakeRequest> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return reqs_;
  }

  static std::string reply(int status, const std::string& reason, const std::string& body,
                           const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason +
           "\r\nContent-Type: application/xml\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
  }
  static std::string error(int status, const std::string& code, const std::string& msg) {
    return reply(status, "Error",
                 "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code><Message>" + msg +
                     "</Message><RequestId>fake-req-1</RequestId></Error>",
                 "x-amz-request-id: fake-req-1\r\n");
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      serve(c);
      ::close(c);
    }
  }
  void serve(int c) {
    std::string buf;
    char tmp[65536];
    auto fill = [&]() {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 3000) <= 0) return false;
      ssize_t n = ::read(c, tmp, sizeof tmp);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
      return true;
    };
    while (buf.find("\r\n\r\n") == std::string::npos)
      if (!fill()) return;
    FakeRequest r;
    size_t he = buf.find("\r\n\r\n");
    r.head = buf.substr(0, he);
    std::string lo = r.head;
    for (auto& ch : lo) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t clen = 0;
    if (size_t p = lo.find("\r\ncontent-length:"); p != std::string::npos)
      clen = std::stoul(lo.substr(p + 17));
    if (contains(lo, "\r\nexpect: 100-continue")) {
      std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
      (void)!::write(c, cont.data(), cont.size());
    }
    while (buf.size() - he - 4 < clen)
      if (!fill()) break;
    r.body = buf.substr(he + 4);
    int hit = ++hits_;
    {
      std::lock_guard<std::mutex> l(mu_);
      reqs_.push_back(r);
    }
    std::string resp = respond_(hit, r);
    if (resp.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      return;
    }
    (void)!::write(c, resp.data(), resp.size());
  }

  std::function<std::string(int, const FakeRequest&)> respond_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> hits_{0};
  std::mutex mu_;
  std::vector<FakeRequest> reqs_;
  std::thread th_;
};

S3Config fake_cfg(const FakeServer& s) {
  S3Config c;
  c.endpoint = s.endpoint();
  c.access_key = "AKIDFAKE:user";
  c.secret_key = "fake-secret-XYZZY-0123456789";
  c.max_attempts = 3;
  c.connect_timeout_s = 2;
  c.request_timeout_s = 5;
  return c;
}

}  // namespace

// ================================================================================================
// Pure functions (no server)

TEST_CASE("S3Url::parse") {
  auto u = S3Url::parse("s3://bucket/prefix/name");
  CHECK(u.bucket == "bucket");
  CHECK(u.key == "prefix/name");
  CHECK(S3Url::parse("s3://b").key.empty());
  CHECK(S3Url::parse("s3://b/").key.empty());
  CHECK(S3Url::parse("s3://my.bucket-1/a b/é").key == "a b/é");
  for (const char* bad :
       {"", "s3://", "s3:///key", "http://b/k", "b/k", "s3://bad bucket/k", "s3://b?x/k"}) {
    CAPTURE(bad);
    std::string m = fatal_message([&] { S3Url::parse(bad); });
    CHECK(contains(m, "S3 URL"));
  }
}

TEST_CASE("s3_uri_encode keeps unreserved characters and '/' only where asked") {
  CHECK(s3_uri_encode("a-b_c.d~e/f", true) == "a-b_c.d~e/f");
  CHECK(s3_uri_encode("a/b", false) == "a%2Fb");
  CHECK(s3_uri_encode("a b+c&d=e?f#g%h:i", true) == "a%20b%2Bc%26d%3De%3Ff%23g%25h%3Ai");
  CHECK(s3_uri_encode("é", true) == "%C3%A9");
}

TEST_CASE("S3Config::from_env: flags, environment, defaults, missing credentials") {
  const char* names[] = {"AWS_ACCESS_KEY_ID",   "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                         "AWS_REGION",          "AWS_DEFAULT_REGION",    "AWS_ENDPOINT_URL",
                         "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_CONFIG_FILE",
                         "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"};
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    saved.emplace_back(n, v ? std::optional<std::string>(v) : std::nullopt);
    ::unsetenv(n);
  }
  ::setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
  ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  {
    std::string m = fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); });
    CHECK(contains(m, "AWS_ACCESS_KEY_ID"));
    CHECK(contains(m, "AWS_SECRET_ACCESS_KEY"));
    ::setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    m = fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); });
    CHECK(contains(m, "AWS_SECRET_ACCESS_KEY is not set"));
    ::setenv("AWS_SECRET_ACCESS_KEY", "SEKRIT-value", 1);
    S3Config c = S3Config::from_env("", "");
    CHECK(c.region == "us-east-1");
    CHECK(c.endpoint == "https://s3.us-east-1.amazonaws.com");
    CHECK_FALSE(c.path_style);
    ::setenv("AWS_DEFAULT_REGION", "eu-west-3", 1);
    CHECK(S3Config::from_env("", "").endpoint == "https://s3.eu-west-3.amazonaws.com");
    ::setenv("AWS_REGION", "eu-central-1", 1);
    ::setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8080", 1);
    ::setenv("AWS_SESSION_TOKEN", "tok", 1);
    c = S3Config::from_env("", "");
    CHECK(c.region == "eu-central-1");
    CHECK(c.endpoint == "http://127.0.0.1:8080");
    CHECK(c.path_style);
    CHECK(c.session_token == "tok");
    c = S3Config::from_env("http://10.0.0.1:9000", "ap-south-1");
    CHECK(c.endpoint == "http://10.0.0.1:9000");
    CHECK(c.region == "ap-south-1");
    CHECK(c.access_key == "AKID");
    CHECK(contains(fatal_message([] { S3Config::from_env("ftp://x", ""); }), "http://"));
    CHECK(
        contains(fatal_message([] { S3Config::from_env("http://u:p@host", ""); }), "credentials"));
    CHECK(contains(fatal_message([] { S3Config::from_env("", "us east"); }), "region"));
    CHECK_FALSE(contains(fatal_message([] { S3Config::from_env("ftp://x", ""); }), "SEKRIT"));
  }
  for (auto& [n, v] : saved) {
    if (v)
      ::setenv(n.c_str(), v->c_str(), 1);
    else
      ::unsetenv(n.c_str());
  }
}

// ================================================================================================
// Retries and request shape, against the fake server

TEST_CASE("transient 503 SlowDown is retried, then succeeds; request carries hash and token") {
  FakeServer srv([](int hit, const FakeRequest&) {
    if (hit <= 2) return FakeServer::error(503, "SlowDown", "Please reduce your request rate.");
    return FakeServer::reply(200, "OK", "", "ETag: \"abc\"\r\n");
  });
  S3Config c = fake_cfg(srv);
  c.session_token = "SESSION-TOKEN-777";
  std::vector<std::string> notes;
  c.notify = [&](const std::string& m) { notes.push_back(m); };
  S3Client cl(c);
  std::string body = "hello body";
  auto t0 = Clock::now();
  cl.put_object("bkt", "dir/a b+é", body);
  CHECK(since(t0) < 5);
  CHECK(srv.hits() == 3);
  REQUIRE(notes.size() == 2);
  CHECK(contains(notes[0], "SlowDown"));
  CHECK(contains(notes[0], "attempt 2 of 3"));
  for (auto& n : notes) CHECK_FALSE(contains(n, c.secret_key));
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 3);
  const std::string& h = reqs[2].head;
  CAPTURE(h);
  CHECK(h.rfind("PUT /bkt/dir/a%20b%2B%C3%A9 HTTP/1.1\r\n", 0) == 0);
  CHECK(contains(h, "x-amz-content-sha256: " + digest_hex(body, EVP_sha256())));
  CHECK(contains(h, "x-amz-security-token: SESSION-TOKEN-777"));
  CHECK(contains(h, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDFAKE:user/"));
  CHECK(contains(h, "/us-east-1/s3/aws4_request"));
  CHECK(contains(h, "x-amz-security-token"));  // signed (listed in SignedHeaders)
  CHECK(reqs[2].body == body);
}

TEST_CASE("transient errors that persist: the message counts the attempts") {
  FakeServer srv([](int, const FakeRequest&) {
    return FakeServer::error(503, "SlowDown", "Please reduce your request rate.");
  });
  S3Config c = fake_cfg(srv);
  S3Client cl(c);
  std::string m = fatal_message([&] { cl.get_object("bkt", "k"); });
  CAPTURE(m);
  CHECK(srv.hits() == 3);
  CHECK(contains(m, "GetObject"));
  CHECK(contains(m, "s3://bkt/k"));
  CHECK(contains(m, "3 attempts"));
  CHECK(contains(m, "HTTP 503"));
  CHECK(contains(m, "SlowDown"));
  CHECK(contains(m, "Please reduce your request rate."));
  CHECK_FALSE(contains(m, c.secret_key));
}

TEST_CASE("the retry time budget bounds the attempts") {
  FakeServer srv(
      [](int, const FakeRequest&) { return FakeServer::error(500, "InternalError", "oops"); });
  S3Config c = fake_cfg(srv);
  c.max_attempts = 50;
  c.retry_budget_s = 2;
  S3Client cl(c);
  auto t0 = Clock::now();
  std::string m = fatal_message([&] { cl.delete_object("bkt", "k"); });
  CAPTURE(m);
  CHECK(since(t0) < 6);
  CHECK(srv.hits() < 50);
  CHECK(contains(m, "retry time limit"));
  CHECK(contains(m, std::to_string(srv.hits()) + " attempt"));
}

TEST_CASE("permanent errors are not retried; CompleteMultipartUpload's 200 with <Error> is seen") {
  FakeServer srv([](int hit, const FakeRequest& r) {
    if (hit == 1) return FakeServer::error(403, "AccessDenied", "Access Denied.");
    if (hit == 2)  // complete: InternalError inside a 200 (retried)
      return FakeServer::reply(200, "OK",
                               "<?xml version=\"1.0\"?>\n  <Error><Code>InternalError</Code>"
                               "<Message>try again</Message></Error>");
    if (hit == 3)
      return FakeServer::reply(200, "OK",
                               "<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag>"
                               "</CompleteMultipartUploadResult>");
    return FakeServer::reply(200, "OK",
                             "<?xml version=\"1.0\"?><Error><Code>InvalidPart</Code>"
                             "<Message>One or more of the specified parts could not be found."
                             "</Message></Error>");
  });
  S3Client cl(fake_cfg(srv));
  std::string m = fatal_message([&] { cl.put_object("bkt", "k", "x"); });
  CHECK(srv.hits() == 1);
  CHECK(contains(m, "HTTP 403 AccessDenied: Access Denied."));
  CHECK(contains(m, "1 attempt)"));
  CHECK(contains(m, "request id fake-req-1"));
  cl.complete_multipart("bkt", "k", "up id/1", {{2, "\"e2\""}, {1, "e1"}});
  CHECK(srv.hits() == 3);
  auto reqs = srv.requests();
  CHECK(reqs[2].head.rfind("POST /bkt/k?uploadId=up%20id%2F1 HTTP/1.1", 0) == 0);
  CHECK(contains(reqs[2].head, "Content-Type: application/xml"));
  CHECK(contains(reqs[2].body,
                 "<Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>"
                 "<Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag></Part>"));
  m = fatal_message([&] { cl.complete_multipart("bkt", "k", "u", {{1, "e1"}}); });
  CHECK(contains(m, "InvalidPart"));
}

TEST_CASE("a server that never answers: timeout, retried, bounded") {
  FakeServer srv([](int, const FakeRequest&) { return std::string(); });
  S3Config c = fake_cfg(srv);
  c.request_timeout_s = 1;
  c.max_attempts = 2;
  S3Client cl(c);
  auto t0 = Clock::now();
  std::string m = fatal_message([&] { cl.head_object("bkt", "k"); });
  CAPTURE(m);
  CHECK(since(t0) < 10);
  CHECK(contains(m, "timed out"));
  CHECK(contains(m, "2 attempts"));
}

TEST_CASE("unreachable endpoint fails within bounded time with a clear message") {
  S3Config c;
  c.endpoint = "http://127.0.0.1:1";
  c.access_key = "k";
  c.secret_key = "secret-never-shown";
  c.connect_timeout_s = 2;
  c.max_attempts = 2;
  c.retry_budget_s = 10;
  S3Client cl(c);
  auto t0 = Clock::now();
  std::string m = fatal_message([&] { cl.put_object("bkt", "key", "data"); });
  CAPTURE(m);
  CHECK(since(t0) < 15);
  CHECK(contains(m, "PutObject s3://bkt/key at http://127.0.0.1:1"));
  CHECK(contains(m, "cannot connect"));
  CHECK(contains(m, "2 attempts"));
  CHECK_FALSE(contains(m, "secret-never-shown"));
}

// ================================================================================================
// Against the real server

TEST_CASE("put/get/head/list/delete round trip, awkward keys") {
  TestEnv e = test_env();
  S3Client cl(e.cfg);
  const std::string p = run_prefix("roundtrip");
  std::vector<std::pair<std::string, std::string>> objs = {
      {p + "plain.bin", pattern(100 * 1024 + 7, 1)},
      {p + "dir/with space é 日本語 🎉.txt", "unicode key\n"},
      {p + "dir/odd+chars&=?#%~;,:@!$'()[].txt", std::string("nul\0byte", 8)},
      {p + "empty", ""},
  };
  for (auto& [k, v] : objs) cl.put_object(e.bucket, k, v);
  for (auto& [k, v] : objs) {
    CAPTURE(k);
    CHECK(cl.get_object(e.bucket, k) == v);
    auto h = cl.head_object(e.bucket, k);
    REQUIRE(h.has_value());
    CHECK(h->size == v.size());
    CHECK(h->key == k);
    CHECK(h->etag == digest_hex(v, EVP_md5()));  // single-part ETag = MD5, quotes removed
  }
  auto list = cl.list_objects(e.bucket, p);
  REQUIRE(list.size() == objs.size());
  std::vector<std::string> want;
  for (auto& [k, v] : objs) want.push_back(k);
  std::sort(want.begin(), want.end());
  for (size_t i = 0; i < list.size(); ++i) {
    CHECK(list[i].key == want[i]);
    auto it =
        std::find_if(objs.begin(), objs.end(), [&](auto& o) { return o.first == list[i].key; });
    REQUIRE(it != objs.end());
    CHECK(list[i].size == it->second.size());
    CHECK(list[i].etag == digest_hex(it->second, EVP_md5()));
  }
  // pagination (continuation tokens), and a prefix ending inside a key
  CHECK(cl.list_objects(e.bucket, p, 1).size() == objs.size());
  CHECK(cl.list_objects(e.bucket, p + "dir/", 1).size() == 2);
  CHECK(cl.list_objects(e.bucket, p + "pl").size() == 1);
  CHECK(cl.list_objects(e.bucket, p + "nothing-here").empty());
  // overwrite
  cl.put_object(e.bucket, objs[0].first, "short now");
  CHECK(cl.get_object(e.bucket, objs[0].first) == "short now");

  for (auto& [k, v] : objs) cl.delete_object(e.bucket, k);
  for (auto& [k, v] : objs) CHECK_FALSE(cl.head_object(e.bucket, k).has_value());
  CHECK(cl.list_objects(e.bucket, p).empty());
  cl.delete_object(e.bucket, objs[0].first);  // deleting a missing key succeeds
  std::string m = fatal_message([&] { cl.get_object(e.bucket, p + "missing"); });
  CHECK(contains(m, "HTTP 404 NoSuchKey"));
  CHECK(contains(m, "s3://" + e.bucket + "/" + p + "missing"));
}

TEST_CASE("get_range returns exact bytes or fails") {
  TestEnv e = test_env();
  S3Client cl(e.cfg);
  const std::string k = run_prefix("range") + "obj";
  const std::string data = pattern(1024 * 1024 + 1, 2);
  cl.put_object(e.bucket, k, data);
  struct R {
    uint64_t off, len;
  };
  for (R r :
       {R{0, 1}, R{10, 10}, R{1024 * 1024 - 3, 4}, R{data.size() - 5, 5}, R{0, data.size()}}) {
    CAPTURE(r.off);
    CAPTURE(r.len);
    CHECK(cl.get_range(e.bucket, k, r.off, r.len) == data.substr(r.off, r.len));
  }
  CHECK(cl.get_range(e.bucket, k, 5, 0).empty());
  std::string m = fatal_message([&] { cl.get_range(e.bucket, k, data.size() - 2, 10); });
  CAPTURE(m);
  CHECK(contains(m, "short read"));
  m = fatal_message([&] { cl.get_range(e.bucket, k, data.size() + 100, 10); });
  CAPTURE(m);
  CHECK(contains(m, "416"));
  cl.delete_object(e.bucket, k);
}

TEST_CASE("multipart upload: 3 parts from 3 threads, completed, verified") {
  TestEnv e = test_env();
  S3Client cl(e.cfg);
  const std::string k = run_prefix("multipart") + "big object.bin";
  const std::vector<std::string> parts = {pattern(5 << 20, 11), pattern(5 << 20, 12),
                                          pattern(1024, 13)};
  std::string id = cl.create_multipart(e.bucket, k);
  REQUIRE(!id.empty());
  std::vector<std::pair<int, std::string>> etags(3);
  std::vector<std::string> errors(3);
  std::vector<std::thread> th;
  for (int i = 0; i < 3; ++i)
    th.emplace_back([&, i] {
      try {
        etags[i] = {i + 1, cl.upload_part(e.bucket, k, id, i + 1, parts[i])};
      } catch (const std::exception& ex) {
        errors[i] = ex.what();
      }
    });
  for (auto& t : th) t.join();
  for (int i = 0; i < 3; ++i) {
    CAPTURE(errors[i]);
    REQUIRE(errors[i].empty());
    CHECK(etags[i].second == digest_hex(parts[i], EVP_md5()));
  }
  CHECK_FALSE(cl.head_object(e.bucket, k).has_value());  // not visible before complete
  std::reverse(etags.begin(), etags.end());              // any order is accepted
  cl.complete_multipart(e.bucket, k, id, etags);
  std::string all = parts[0] + parts[1] + parts[2];
  std::string got = cl.get_object(e.bucket, k);
  CHECK(got.size() == all.size());
  CHECK(got == all);
  auto h = cl.head_object(e.bucket, k);
  REQUIRE(h.has_value());
  CHECK(h->size == all.size());
  CHECK(h->etag.size() > 2);
  CHECK(h->etag.substr(h->etag.size() - 2) == "-3");
  CHECK(cl.get_range(e.bucket, k, (5 << 20) - 2, 4) ==
        all.substr((5 << 20) - 2, 4));  // across parts
  auto list = cl.list_objects(e.bucket, run_prefix("multipart"));
  REQUIRE(list.size() == 1);
  CHECK(list[0].size == all.size());
  cl.delete_object(e.bucket, k);
  CHECK_FALSE(cl.head_object(e.bucket, k).has_value());
}

TEST_CASE("abort_multipart leaves no object; a wrong upload id is reported") {
  TestEnv e = test_env();
  S3Client cl(e.cfg);
  const std::string k = run_prefix("abort") + "obj";
  std::string id = cl.create_multipart(e.bucket, k);
  cl.upload_part(e.bucket, k, id, 1, pattern(5 << 20, 21));
  cl.upload_part(e.bucket, k, id, 2, "tail");
  cl.abort_multipart(e.bucket, k, id);
  CHECK_FALSE(cl.head_object(e.bucket, k).has_value());
  CHECK(cl.list_objects(e.bucket, run_prefix("abort")).empty());
  cl.abort_multipart(e.bucket, k, id);  // again: no throw
  std::string m = fatal_message([&] { cl.upload_part(e.bucket, k, id, 3, "x"); });
  CAPTURE(m);
  CHECK(contains(m, "NoSuchUpload"));
  m = fatal_message([&] { cl.complete_multipart(e.bucket, k, id, {{1, "abc"}}); });
  CHECK(contains(m, "NoSuchUpload"));
}

TEST_CASE("too-small part: EntityTooSmall reported clearly") {
  TestEnv e = test_env();
  S3Client cl(e.cfg);
  const std::string k = run_prefix("small") + "obj";
  std::string id = cl.create_multipart(e.bucket, k);
  std::string e1 = cl.upload_part(e.bucket, k, id, 1, pattern(1024, 31));
  std::string e2 = cl.upload_part(e.bucket, k, id, 2, pattern(1024, 32));
  std::string m = fatal_message([&] {
    cl.complete_multipart(e.bucket, k, id, {{1, e1}, {2, e2}});
  });
  CAPTURE(m);
  CHECK(contains(m, "CompleteMultipartUpload"));
  CHECK(contains(m, "s3://" + e.bucket + "/" + k));
  CHECK(contains(m, "HTTP 400 EntityTooSmall"));
  CHECK(contains(m, "5 MiB"));
  cl.abort_multipart(e.bucket, k, id);
  CHECK_FALSE(cl.head_object(e.bucket, k).has_value());
}

TEST_CASE("wrong secret: SignatureDoesNotMatch, no secret in the message") {
  TestEnv e = test_env();
  S3Config c = e.cfg;
  c.secret_key = "Wrong-Secret-Do-Not-Print-42";
  S3Client cl(c);
  const std::string k = run_prefix("auth") + "obj";
  for (int op = 0; op < 3; ++op) {
    CAPTURE(op);
    std::string m = fatal_message([&] {
      if (op == 0) cl.put_object(e.bucket, k, "data");
      if (op == 1) cl.get_object(e.bucket, k);
      if (op == 2) cl.head_object(e.bucket, k);  // HEAD has no body: the client asks with a GET
    });
    CAPTURE(m);
    CHECK(contains(m, "HTTP 403 SignatureDoesNotMatch"));
    CHECK(contains(m, "s3://" + e.bucket + "/" + k));
    CHECK(contains(m, "AWS_SECRET_ACCESS_KEY"));
    CHECK(contains(m, "1 attempt)"));
    CHECK_FALSE(contains(m, c.secret_key));
    CHECK_FALSE(contains(m, e.cfg.secret_key));
    CHECK_FALSE(contains(m, "Signature="));
  }
  S3Config u = e.cfg;
  u.access_key = "nosuch:user";
  std::string m = fatal_message([&] { S3Client(u).put_object(e.bucket, k, "x"); });
  CAPTURE(m);
  CHECK(contains(m, "HTTP 403"));
  // AWS says InvalidAccessKeyId; Swift's s3api cannot tell an unknown key from a wrong secret
  CHECK((contains(m, "InvalidAccessKeyId") || contains(m, "SignatureDoesNotMatch")));
  CHECK(contains(m, "AWS_ACCESS_KEY_ID"));
  CHECK_FALSE(contains(m, e.cfg.secret_key));
}

TEST_CASE("nonexistent bucket: NoSuchBucket") {
  TestEnv e = test_env();
  S3Client cl(e.cfg);
  const std::string b = "no-such-bucket-" + std::to_string(::getpid());
  std::string m = fatal_message([&] { cl.put_object(b, "k", "x"); });
  CAPTURE(m);
  CHECK(contains(m, "PutObject s3://" + b + "/k"));
  CHECK(contains(m, "HTTP 404 NoSuchBucket"));
  m = fatal_message([&] { cl.head_object(b, "k"); });  // not "key absent": the bucket is
  CHECK(contains(m, "NoSuchBucket"));
  m = fatal_message([&] { cl.list_objects(b, ""); });
  CHECK(contains(m, "NoSuchBucket"));
  m = fatal_message([&] { cl.create_multipart(b, "k"); });
  CHECK(contains(m, "NoSuchBucket"));
}

// ================================================================================================
// Commit semantics and limits (issue 17)

TEST_CASE("plan_cloud_parts: parts grow to stay within 10,000; over 5 TiB becomes fragments") {
  const uint64_t MiB = 1ull << 20;
  CHECK(plan_cloud_parts(64 * MiB, 100 * MiB, false).part == 64 * MiB);  // fits: as asked
  CHECK(!plan_cloud_parts(64 * MiB, 100 * MiB, false).split);
  // tiny parts planning 10,001 parts: the part size grows to the next whole MiB
  CloudPartPlan p = plan_cloud_parts(5 * MiB, 10001 * 5 * MiB, false);
  CHECK(p.part == 6 * MiB);
  CHECK(!p.split);
  CHECK((10001 * 5 * MiB + p.part - 1) / p.part <= 10000);
  CHECK(plan_cloud_parts(5 * MiB, 10000 * 5 * MiB, false).part == 5 * MiB);  // exactly 10,000
  // 1 TiB with 64 MiB parts would need 16,384 parts
  p = plan_cloud_parts(64 * MiB, 1ull << 40, false);
  CHECK(p.part == 105 * MiB);
  CHECK((1ull << 40) / p.part < 10000);
  // over 5 TiB: one object cannot hold it, fragments of one part each
  p = plan_cloud_parts(64 * MiB, (5ull << 40) + 1, false);
  CHECK(p.split);
  CHECK(p.part <= 5ull << 30);
  // --split-chunk-mb: as given
  p = plan_cloud_parts(8 * MiB, 1ull << 45, true);
  CHECK(p.part == 8 * MiB);
  CHECK(p.split);
}

TEST_CASE("parse_s3_time and multipart_etag") {
  CHECK(parse_s3_time("1970-01-01T00:00:00.000Z") == 0);
  CHECK(parse_s3_time("2026-11-29T12:00:00.000Z") == 1795953600);
  CHECK(parse_s3_time("2026-11-29T12:00:00Z") == 1795953600);
  for (const char* bad : {"", "2026-11-29", "2026-13-01T00:00:00Z", "2026-11-29T12:00:00", "x026-11-29T12:00:00Z"}) {
    CAPTURE(bad);
    CHECK(!parse_s3_time(bad));
  }
  std::string a = digest_hex("part one", EVP_md5()), b = digest_hex("part two", EVP_md5());
  std::string bin;
  for (auto* h : {&a, &b})
    for (size_t i = 0; i < 32; i += 2) bin.push_back(static_cast<char>(std::stoi(h->substr(i, 2), nullptr, 16)));
  CHECK(multipart_etag({a, b}) == digest_hex(bin, EVP_md5()) + "-2");
  CHECK(multipart_etag({a, "not-an-md5"}).empty());
  CHECK(multipart_etag({}).empty());
}

TEST_CASE("conditional writes: If-None-Match, 412 is Exists, 501 is Unsupported (not retried); User-Agent, Content-Type") {
  FakeServer srv([](int hit, const FakeRequest&) {
    if (hit == 1) return FakeServer::reply(200, "OK", "", "ETag: \"abc\"\r\n");
    if (hit == 2) return FakeServer::error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
    if (hit == 3) return FakeServer::error(501, "NotImplemented", "Conditional object PUTs are not supported.");
    return FakeServer::error(412, "PreconditionFailed", "no");
  });
  S3Client cl(fake_cfg(srv));
  CHECK(cl.put_object_if_absent("bkt", "a.manifest.json", "{}", "application/json") == PutResult::Created);
  CHECK(cl.put_object_if_absent("bkt", "a.manifest.json", "{}", "application/json") == PutResult::Exists);
  CHECK(cl.put_object_if_absent("bkt", "a.manifest.json", "{}", "application/json") == PutResult::Unsupported);
  CHECK(srv.hits() == 3);  // 501 is permanent
  CHECK(cl.complete_multipart("bkt", "k", "u", {{1, "e1"}}, true) == PutResult::Exists);
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 4);
  CHECK(contains(reqs[0].head, "If-None-Match: *"));
  CHECK(contains(reqs[0].head, "Content-Type: application/json"));
  CHECK(contains(reqs[0].head, "User-Agent: pbackup/"));
  CHECK(contains(reqs[3].head, "If-None-Match: *"));
  CHECK(reqs[3].head.rfind("POST /bkt/k?uploadId=u ", 0) == 0);
}

TEST_CASE("list_multipart_uploads follows key and upload id markers over pages") {
  FakeServer srv([](int hit, const FakeRequest&) {
    if (hit == 1)
      return FakeServer::reply(200, "OK",
                               "<ListMultipartUploadsResult><Bucket>bkt</Bucket><IsTruncated>true</IsTruncated>"
                               "<NextKeyMarker>p/k%202</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>"
                               "<EncodingType>url</EncodingType>"
                               "<Upload><Key>p/k%201</Key><UploadId>u1</UploadId><Initiated>2026-11-29T12:00:00.000Z</Initiated></Upload>"
                               "<Upload><Key>p/k%202</Key><UploadId>u2</UploadId><Initiated>2026-11-29T12:00:01.000Z</Initiated></Upload>"
                               "</ListMultipartUploadsResult>");
    return FakeServer::reply(200, "OK",
                             "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
                             "<Upload><Key>p/k&amp;3</Key><UploadId>u3</UploadId><Initiated>2026-11-29T12:00:02.000Z</Initiated></Upload>"
                             "</ListMultipartUploadsResult>");
  });
  S3Client cl(fake_cfg(srv));
  auto ups = cl.list_multipart_uploads("bkt", "p/", 2);
  REQUIRE(ups.size() == 3);
  CHECK(ups[0].key == "p/k 1");
  CHECK(ups[1].upload_id == "u2");
  CHECK(ups[2].key == "p/k&3");
  CHECK(ups[2].initiated == "2026-11-29T12:00:02.000Z");
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].head.rfind("GET /bkt?max-uploads=2&prefix=p%2F&uploads= ", 0) == 0);
  CHECK(reqs[1].head.rfind("GET /bkt?key-marker=p%2Fk%202&max-uploads=2&prefix=p%2F&upload-id-marker=u2&uploads= ", 0) == 0);
  CHECK(contains(fatal_message([] { parse_list_uploads_page("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>"); }),
                 "malformed <Upload>"));
}

TEST_CASE("cloud-cleanup: the key a failed run names, or its folder; never a sibling that starts the same") {
  // S3's own prefix rule: uploads whose key starts with the prefix asked for
  const std::vector<std::string> keys = {"proj/n.tar.gz", "proj/n.tar.gz.part0002", "proj-old/x.tar.gz"};
  std::mutex mu;
  std::vector<std::string> aborted;
  FakeServer srv([&](int, const FakeRequest& r) {
    const std::string line = r.head.substr(0, r.head.find('\r'));
    if (line.rfind("DELETE ", 0) == 0) {
      std::lock_guard<std::mutex> l(mu);
      aborted.push_back(line.substr(7, line.find('?') - 7));
      return FakeServer::reply(204, "No Content", "");
    }
    std::string prefix;
    size_t at = line.find("prefix=");
    if (at != std::string::npos) prefix = line.substr(at + 7, line.find_first_of("& ", at) - at - 7);
    std::string decoded;  // only %2F is encoded in these keys
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (prefix.compare(i, 3, "%2F") == 0) {
        decoded += '/';
        i += 2;
      } else {
        decoded += prefix[i];
      }
    }
    prefix = decoded;
    std::string body = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>";
    for (const auto& k : keys)
      if (k.rfind(prefix, 0) == 0)
        body += "<Upload><Key>" + k + "</Key><UploadId>id-" + k + "</UploadId><Initiated>2026-11-29T12:00:00.000Z</Initiated></Upload>";
    return FakeServer::reply(200, "OK", body + "</ListMultipartUploadsResult>");
  });
  const std::string old_key = env_or_empty("AWS_ACCESS_KEY_ID"), old_secret = env_or_empty("AWS_SECRET_ACCESS_KEY");
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-XYZZY-0123456789", 1);
  auto run = [&](const std::string& source) {
    {
      std::lock_guard<std::mutex> l(mu);
      aborted.clear();
    }
    CleanupOptions o;
    o.source = source;
    o.s3_endpoint = srv.endpoint();
    o.s3_region = "us-east-1";
    o.s3_addressing = "path";
    Log log(0, LogLevel::Error);
    CHECK(run_cloud_cleanup(o, log) == 0);
    std::lock_guard<std::mutex> l(mu);
    std::vector<std::string> v = aborted;
    std::sort(v.begin(), v.end());
    return v;
  };
  // the command a failed run prints names the object's key
  CHECK(run("s3://bkt/proj/n.tar.gz") == std::vector<std::string>{"/bkt/proj/n.tar.gz"});
  CHECK(run("s3://bkt/proj/n.tar.gz.part0002") == std::vector<std::string>{"/bkt/proj/n.tar.gz.part0002"});
  // a folder, with or without its '/': not proj-old
  CHECK(run("s3://bkt/proj") == std::vector<std::string>{"/bkt/proj/n.tar.gz", "/bkt/proj/n.tar.gz.part0002"});
  CHECK(run("s3://bkt/proj/") == std::vector<std::string>{"/bkt/proj/n.tar.gz", "/bkt/proj/n.tar.gz.part0002"});
  CHECK(run("s3://bkt/pro").empty());
  for (auto [name, value] : {std::pair{"AWS_ACCESS_KEY_ID", &old_key}, std::pair{"AWS_SECRET_ACCESS_KEY", &old_secret}})
    value->empty() ? ::unsetenv(name) : ::setenv(name, value->c_str(), 1);
}

TEST_CASE("messages: a short secret is not scrubbed out of words; an endpoint with a password is refused unprinted") {
  FakeServer srv([](int, const FakeRequest&) { return FakeServer::error(403, "AccessDenied", "Access Denied."); });
  S3Config c = fake_cfg(srv);
  c.secret_key = "bucket";  // a word of the message
  S3Client cl(c);
  std::string m = fatal_message([&] { cl.put_object("bucket", "k", "x"); });
  CHECK(contains(m, "s3://bucket/k"));
  const std::string saved_key = env_or_empty("AWS_ACCESS_KEY_ID"), saved_secret = env_or_empty("AWS_SECRET_ACCESS_KEY");
  ::setenv("AWS_ACCESS_KEY_ID", "AK", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
  m = fatal_message([] { S3Config::from_env("https://user:pa/ss@example.com", ""); });
  CHECK(contains(m, "must not contain credentials"));
  CHECK(!contains(m, "pa/ss"));
  ::setenv("AWS_RETRY_MODE", "standard", 1);
  CHECK(S3Config::from_env("http://127.0.0.1:9", "").max_attempts == 3);
  ::setenv("AWS_MAX_ATTEMPTS", "7", 1);
  CHECK(S3Config::from_env("http://127.0.0.1:9", "").max_attempts == 7);
  ::setenv("PBACKUP_S3_STALL_SECONDS", "4", 1);
  CHECK(S3Config::from_env("http://127.0.0.1:9", "").stall_timeout_s == 4);
  ::setenv("AWS_MAX_ATTEMPTS", "0", 1);
  CHECK(contains(fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); }), "AWS_MAX_ATTEMPTS"));
  ::setenv("AWS_MAX_ATTEMPTS", "2", 1);
  ::setenv("AWS_RETRY_MODE", "fast", 1);
  CHECK(contains(fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); }), "AWS_RETRY_MODE"));
  for (const char* n : {"AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "PBACKUP_S3_STALL_SECONDS"}) ::unsetenv(n);
  CHECK(S3Config::from_env("http://127.0.0.1:9", "").max_attempts == 5);
  ::setenv("AWS_ACCESS_KEY_ID", saved_key.c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", saved_secret.c_str(), 1);
}

// ================================================================================================
// AWS conventions: config files, credential_process, web identity (STS), IMDSv2

namespace {
// Sets (or with nullopt unsets) environment variables for a scope; restores them after.
struct EnvScope {
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  void set(const std::string& n, const std::optional<std::string>& v) {
    const char* old = std::getenv(n.c_str());
    saved.emplace_back(n, old ? std::optional<std::string>(old) : std::nullopt);
    if (v)
      ::setenv(n.c_str(), v->c_str(), 1);
    else
      ::unsetenv(n.c_str());
  }
  EnvScope() {
    for (const char* n : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                          "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                          "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                          "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL_STS", "AWS_EC2_METADATA_DISABLED",
                          "AWS_EC2_METADATA_SERVICE_ENDPOINT"})
      set(n, std::nullopt);
    set("AWS_CONFIG_FILE", "/nonexistent/config");
    set("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials");
    set("AWS_EC2_METADATA_DISABLED", "true");
  }
  ~EnvScope() {
    for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }
};

std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = "/tmp/pbackup-s3test-" + std::to_string(::getpid()) + "-" + name;
  FILE* f = std::fopen(path.c_str(), "w");
  REQUIRE(f);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  return path;
}
}  // namespace

TEST_CASE("parse_ini: sections, comments, nested s3 settings; malformed lines named") {
  IniSections s = parse_ini("# c\n[default]\nregion = eu-west-1\n; c2\ns3 =\n  addressing_style = path\n  endpoint_url=http://h:1\n"
                            "[profile p2]\nAWS_Access_Key_Id = K = with equals\n",
                            "cfg");
  CHECK(s["default"]["region"] == "eu-west-1");
  CHECK(s["default"]["s3.addressing_style"] == "path");
  CHECK(s["default"]["s3.endpoint_url"] == "http://h:1");
  CHECK(s["profile p2"]["aws_access_key_id"] == "K = with equals");
  CHECK(contains(fatal_message([] { parse_ini("[default]\njunk\n", "cfg"); }), "cfg:2:"));
  CHECK(contains(fatal_message([] { parse_ini("region = x\n", "cfg"); }), "before the first [section]"));
  CHECK(contains(fatal_message([] { parse_ini("[default\n", "cfg"); }), "cfg:1:"));
  CHECK(contains(fatal_message([] { parse_ini("[default]\n  x = 1\n", "cfg"); }), "indented"));
}

TEST_CASE("profiles: AWS_PROFILE picks keys, region, endpoint_url, addressing_style, ca_bundle from the files") {
  EnvScope env;
  std::string creds = write_temp("credentials", "[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = defsecret\n"
                                                 "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = worksecret\n"
                                                 "aws_session_token = worktoken\n");
  std::string cfg = write_temp("config", "[default]\nregion = eu-north-1\n[profile work]\nregion = ap-east-1\n"
                                         "ca_bundle = /etc/ssl/work.pem\ns3 =\n  addressing_style = virtual\n  endpoint_url = https://s3.work.example\n");
  env.set("AWS_SHARED_CREDENTIALS_FILE", creds);
  env.set("AWS_CONFIG_FILE", cfg);
  S3Config c = S3Config::from_env("", "");
  CHECK(c.access_key == "DEFKEY");
  CHECK(c.region == "eu-north-1");
  CHECK(c.endpoint == "https://s3.eu-north-1.amazonaws.com");
  env.set("AWS_PROFILE", "work");
  c = S3Config::from_env("", "");
  CHECK(c.access_key == "WORKKEY");
  CHECK(c.secret_key == "worksecret");
  CHECK(c.session_token == "worktoken");
  CHECK(c.region == "ap-east-1");
  CHECK(c.endpoint == "https://s3.work.example");
  CHECK_FALSE(c.path_style);  // the profile says virtual, though the endpoint is not AWS's
  CHECK(c.ca_bundle == "/etc/ssl/work.pem");
  CHECK(S3Config::from_env("", "", "path").path_style);  // --s3-addressing over the profile
  env.set("AWS_ACCESS_KEY_ID", "ENVKEY");                 // the environment comes first
  env.set("AWS_SECRET_ACCESS_KEY", "envsecret");
  CHECK(S3Config::from_env("", "").access_key == "ENVKEY");
  std::remove(creds.c_str());
  std::remove(cfg.c_str());
}

TEST_CASE("credential_process: JSON Version 1, expiry, refreshed before it expires; failures named") {
  EnvScope env;
  std::string counter = write_temp("count", "");
  // each run appends a line: the keys carry the run number (so a refresh is visible)
  std::string script = write_temp("proc.sh",
                                  "echo x >> " + counter + "\nn=$(wc -l < " + counter + ")\n"
                                  "printf '{\"Version\": 1, \"AccessKeyId\": \"PROC%s\", \"SecretAccessKey\": \"s%s\", "
                                  "\"SessionToken\": \"t\", \"Expiration\": \"%s\"}' $n $n \"$EXP\"\n");
  std::string cfg = write_temp("config2", "[default]\ncredential_process = sh " + script + "\n");
  env.set("AWS_CONFIG_FILE", cfg);
  env.set("EXP", "2099-01-01T00:00:00Z");
  S3Config c = S3Config::from_env("http://127.0.0.1:9", "");
  CHECK(c.access_key == "PROC1");
  CHECK(c.expires == *parse_s3_time("2099-01-01T00:00:00Z"));
  REQUIRE(c.refresh);
  // credentials about to expire are renewed before a request is signed
  FakeServer srv([](int, const FakeRequest&) { return FakeServer::reply(200, "OK", "", "ETag: \"abc\"\r\n"); });
  env.set("EXP", "2000-01-01T00:00:00Z");
  S3Config soon = S3Config::from_env(srv.endpoint(), "");
  CHECK(soon.access_key == "PROC2");
  S3Client cl(soon);
  cl.put_object("bkt", "k", "x");
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(contains(reqs[0].head, "Credential=PROC3/"));  // renewed: run 3
  std::string bad = write_temp("config3", "[default]\ncredential_process = sh -c 'echo {\\\"Version\\\": 2}'\n");
  env.set("AWS_CONFIG_FILE", bad);
  CHECK(contains(fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); }), "\"Version\": 1"));
  std::string fails = write_temp("config4", "[default]\ncredential_process = false\n");
  env.set("AWS_CONFIG_FILE", fails);
  CHECK(contains(fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); }), "credential_process 'false' failed"));
  for (auto& f : {counter, script, cfg, bad, fails}) std::remove(f.c_str());
}

TEST_CASE("web identity: STS AssumeRoleWithWebIdentity with the token file's token, exact request") {
  EnvScope env;
  FakeServer sts([](int, const FakeRequest&) {
    return FakeServer::reply(200, "OK",
                             "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                             "<AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>websecret</SecretAccessKey>"
                             "<SessionToken>webtoken</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>"
                             "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>");
  });
  std::string token = write_temp("token", "eyJ.k8s.token\n");
  env.set("AWS_WEB_IDENTITY_TOKEN_FILE", token);
  env.set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/backup");
  env.set("AWS_ROLE_SESSION_NAME", "node7");
  env.set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  S3Config c = S3Config::from_env("http://127.0.0.1:9", "");
  CHECK(c.access_key == "ASIAWEB");
  CHECK(c.secret_key == "websecret");
  CHECK(c.session_token == "webtoken");
  CHECK(c.expires == *parse_s3_time("2099-01-01T00:00:00Z"));
  auto reqs = sts.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].head.rfind("POST / HTTP/1.1", 0) == 0);
  CHECK(contains(reqs[0].head, "Content-Type: application/x-www-form-urlencoded"));
  CHECK(reqs[0].body ==
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbackup"
        "&RoleSessionName=node7&WebIdentityToken=eyJ.k8s.token");
  CHECK_FALSE(contains(reqs[0].head, "Authorization"));  // unsigned, as STS wants it
  std::remove(token.c_str());
}

TEST_CASE("IMDSv2: token PUT with TTL, then role and credentials with the token; disabled by AWS_EC2_METADATA_DISABLED") {
  EnvScope env;
  FakeServer imds([](int hit, const FakeRequest& r) {
    if (hit == 1) return FakeServer::reply(200, "OK", "TOKEN123");
    if (!contains(r.head, "X-aws-ec2-metadata-token: TOKEN123")) return FakeServer::error(401, "Unauthorized", "no token");
    if (hit == 2) return FakeServer::reply(200, "OK", "backup-role");
    return FakeServer::reply(200, "OK",
                             "{\"Code\": \"Success\", \"AccessKeyId\": \"ASIAIMDS\", \"SecretAccessKey\": \"imdssecret\", "
                             "\"Token\": \"imdstoken\", \"Expiration\": \"2099-01-01T00:00:00Z\"}");
  });
  env.set("AWS_EC2_METADATA_DISABLED", std::nullopt);
  env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint() + "/");
  S3Config c = S3Config::from_env("http://127.0.0.1:9", "");
  CHECK(c.access_key == "ASIAIMDS");
  CHECK(c.session_token == "imdstoken");
  CHECK(c.refresh);
  auto reqs = imds.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].head.rfind("PUT /latest/api/token HTTP/1.1", 0) == 0);
  CHECK(contains(reqs[0].head, "X-aws-ec2-metadata-token-ttl-seconds: 21600"));
  CHECK(reqs[1].head.rfind("GET /latest/meta-data/iam/security-credentials/ HTTP/1.1", 0) == 0);
  CHECK(reqs[2].head.rfind("GET /latest/meta-data/iam/security-credentials/backup-role HTTP/1.1", 0) == 0);
  env.set("AWS_EC2_METADATA_DISABLED", "true");
  std::string m = fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); });
  CHECK(contains(m, "instance metadata disabled"));
  CHECK(imds.hits() == 3);
}

TEST_CASE("IMDSv2: a token, role name or credentials that could inject headers or paths are refused") {
  EnvScope env;
  env.set("AWS_EC2_METADATA_DISABLED", std::nullopt);
  struct Case {
    std::string token, role, key, expect;
  };
  const Case cases[] = {
      {"TOK\r\nX-Evil: 1", "backup-role", "ASIAIMDS", "session token is not a header value"},
      {"TOK", "../../user-data", "ASIAIMDS", "not an IAM role name"},
      {"TOK", "backup-role", "ASIA\r\nX-Evil: 1", "characters a request header cannot carry"},
  };
  for (const Case& k : cases) {
    FakeServer imds([&k](int hit, const FakeRequest&) {
      if (hit == 1) return FakeServer::reply(200, "OK", k.token);
      if (hit == 2) return FakeServer::reply(200, "OK", k.role);
      return FakeServer::reply(200, "OK", "{\"AccessKeyId\": \"" + std::string(k.key == "ASIAIMDS" ? "ASIAIMDS" : "ASIA\\r\\nX-Evil: 1") +
                                              "\", \"SecretAccessKey\": \"s\", \"Token\": \"t\"}");
    });
    env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint() + "/");
    std::string m = fatal_message([] { S3Config::from_env("http://127.0.0.1:9", ""); });
    CAPTURE(m);
    CHECK(contains(m, k.expect));
    CHECK(!contains(m, "X-Evil"));
  }
}

TEST_CASE("S3 per-part SHA-256: asked at create, sent with each part and at complete where the server keeps them") {
  FakeServer srv([](int hit, const FakeRequest&) {
    if (hit == 1)  // AWS echoes the algorithm
      return FakeServer::reply(200, "OK", "<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>",
                               "x-amz-checksum-algorithm: SHA256\r\n");
    if (hit == 2)  // Swift s3api ignores it
      return FakeServer::reply(200, "OK", "<InitiateMultipartUploadResult><UploadId>u2</UploadId></InitiateMultipartUploadResult>");
    if (hit == 3) return FakeServer::reply(200, "OK", "", "ETag: \"e1\"\r\n");
    return FakeServer::reply(200, "OK", "<CompleteMultipartUploadResult><ETag>\"x-1\"</ETag></CompleteMultipartUploadResult>");
  });
  S3Client cl(fake_cfg(srv));
  bool kept = false;
  CHECK(cl.create_multipart("bkt", "k", "application/gzip", &kept) == "u1");
  CHECK(kept);
  CHECK(cl.create_multipart("bkt", "k", "application/gzip", &kept) == "u2");
  CHECK_FALSE(kept);
  const std::string part = "part bytes", hex = digest_hex(part, EVP_sha256());
  CHECK(cl.upload_part("bkt", "k", "u1", 1, part, hex) == "e1");
  cl.complete_multipart("bkt", "k", "u1", {{1, "e1"}}, false, {{1, hex}});
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 4);
  CHECK(contains(reqs[0].head, "x-amz-checksum-algorithm: SHA256"));
  CHECK(contains(reqs[0].head, "Content-Type: application/gzip"));
  // base64 of the SHA-256 of "part bytes"
  unsigned char md[32];
  unsigned n = 0;
  EVP_Digest(part.data(), part.size(), md, &n, EVP_sha256(), nullptr);
  unsigned char b64[64] = {0};
  EVP_EncodeBlock(b64, md, 32);
  std::string want = reinterpret_cast<char*>(b64);
  CHECK(contains(reqs[2].head, "x-amz-checksum-sha256: " + want));
  CHECK(contains(reqs[3].body, "<Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag><ChecksumSHA256>" + want + "</ChecksumSHA256></Part>"));
}

TEST_CASE("a TLS protocol error is not retried") {
  // a plain HTTP server on the https port: it answers the ClientHello with HTTP (curl: "wrong
  // version number", CURLE_SSL_CONNECT_ERROR), the same every time
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::atomic<int> conns{0};
  std::atomic<bool> stop{false};
  std::thread th([&] {
    while (!stop) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) continue;
      ++conns;
      char buf[4096];
      (void)!::read(c, buf, sizeof buf);
      const char* r = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      (void)!::write(c, r, std::strlen(r));
      ::close(c);
    }
  });
  S3Config c;
  c.endpoint = "https://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  c.access_key = "AK";
  c.secret_key = "secret-secret-secret";
  c.max_attempts = 3;
  c.connect_timeout_s = 2;
  std::string m;
  {
    S3Client cl(c);
    m = fatal_message([&] { cl.put_object("bkt", "k", "x"); });
  }
  stop = true;
  th.join();
  ::close(fd);
  CAPTURE(m);
  CHECK(contains(m, "(1 attempt)"));
  CHECK(conns == 1);
}
