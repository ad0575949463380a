// A small S3 client on libcurl, for the cloud destination and the S3 store (DESIGN §5).
//
// Requests are signed by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3"); this file only writes
// them in the canonical form SigV4 needs: object keys percent-encoded except '/', query strings
// sorted with every parameter as name=value, and an x-amz-content-sha256 header carrying the real
// SHA-256 of the body (so the server rejects a body damaged in transit with BadDigest).
//
// Errors: every failure throws pbackup::Fatal whose message names the operation, s3://bucket/key,
// the endpoint, the HTTP status and the server's error <Code> and <Message>, plus a hint for the
// usual causes, and how many attempts were made. The secret key, the session token and the
// signature never appear in a message. Transient failures (connection errors and timeouts, HTTP
// 5xx, 429, 408, 400 RequestTimeout, SlowDown/InternalError) are retried with exponential backoff
// and full jitter, at most max_attempts times and no new attempt after retry_budget_s seconds.
// Nothing else escapes (std::bad_alloc aside).
//
// Thread safety: an S3Client is thread-safe: any number of threads may call it at once (each call
// borrows a libcurl handle from a small pool, so connections are reused across calls). A
// moved-from client must not be used. ETags are returned without their surrounding quotes.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dest/s3_credentials.h"

namespace pbackup {

struct S3Config {
  // e.g. http://127.0.0.1:8080, optionally with a path prefix (http://host/s3). From
  // --s3-endpoint, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; default
  // https://s3.REGION.amazonaws.com.
  std::string endpoint;
  // --s3-region, AWS_REGION, AWS_DEFAULT_REGION; default us-east-1. Must match the server's.
  std::string region = "us-east-1";
  // AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (may contain ':'), or the
  // rest of the credential chain (s3_credentials.h).
  std::string access_key, secret_key, session_token;
  // Temporary credentials: when they expire (seconds since the epoch; 0 never), and how to get
  // new ones; the client refreshes them 5 minutes before they expire.
  int64_t expires = 0;
  std::function<S3Credentials()> refresh;
  // Path-style (http://host/bucket/key: on-premises servers) or virtual-host style
  // (http://bucket.host/key). In virtual-host mode a bucket whose name has a '.' still uses
  // path style (its name would not match the TLS certificate's wildcard).
  bool path_style = true;
  // Retries and timeouts (environment, read by from_env): AWS_MAX_ATTEMPTS (else 3 with
  // AWS_RETRY_MODE=standard|adaptive, 5 with legacy or unset), PBACKUP_S3_RETRY_SECONDS,
  // PBACKUP_S3_CONNECT_SECONDS, PBACKUP_S3_STALL_SECONDS, PBACKUP_S3_TIMEOUT_SECONDS.
  int max_attempts = 5;         // tries per request, the first included (>= 1)
  long retry_budget_s = 60;     // no new attempt starts this long after the first one began
  long connect_timeout_s = 10;  // TCP + TLS connect, per attempt
  // An attempt fails when fewer than 1 byte/s moves for stall_timeout_s (a frozen server), or
  // after request_timeout_s plus one second per MiB of body (uploads and ranged reads).
  long stall_timeout_s = 30;
  long request_timeout_s = 300;
  std::string ca_bundle;  // AWS_CA_BUNDLE: CA file for https (system store otherwise)
  // Optional: told (one line, no credentials) about each retry and about a failed abort. May be
  // called from several threads at once (those calling the client).
  std::function<void(const std::string&)> notify;

  // Endpoint and region from the flags when non-empty, else from the environment as above;
  // credentials from the environment. Fatal with a clear message if credentials are missing or
  // the endpoint or region is malformed. For the default AWS endpoint addressing is
  // virtual-host style, otherwise path style.
  // addressing_flag: "path", "virtual" or "" (the profile's s3.addressing_style, else as above).
  // Region, endpoint_url, s3.addressing_style and ca_bundle also come from the AWS config
  // file's profile (AWS_PROFILE, AWS_CONFIG_FILE) when the flags and variables do not say.
  static S3Config from_env(const std::string& endpoint_flag, const std::string& region_flag,
                           const std::string& addressing_flag = "");
};

// Where every client made by from_env reports retries, failed aborts and objects left behind
// (set once by main to the log's warning lines; nothing is reported when unset).
void set_s3_notify(std::function<void(const std::string&)> f);

// A multipart upload in progress (ListMultipartUploads).
struct S3Upload {
  std::string key, upload_id;
  std::string initiated;  // ISO 8601 as the server sent it, e.g. 2026-11-29T12:00:00.000Z
};
struct S3UploadsPage {
  std::vector<S3Upload> uploads;
  bool truncated = false;
  std::string next_key_marker, next_upload_id_marker;
};
// Throws Fatal on a body that is not a ListMultipartUploadsResult or a malformed <Upload>.
S3UploadsPage parse_list_uploads_page(std::string_view xml);

// Seconds since the epoch of an S3 timestamp (2026-11-29T12:00:00.000Z); nullopt if malformed.
std::optional<int64_t> parse_s3_time(std::string_view iso);

// What a conditional write (If-None-Match: *) did.
enum class PutResult {
  Created,      // written; nothing was there
  Exists,       // the key exists (412 PreconditionFailed, or 409 ConditionalRequestConflict)
  Unsupported,  // the server refuses conditional writes (501 NotImplemented); nothing written
};

// The ETag S3 gives an object completed from these parts' ETags (MD5 of the parts' binary MD5s,
// "-N"); "" when a part's ETag is not an MD5 (e.g. encrypted uploads).
std::string multipart_etag(const std::vector<std::string>& part_etags);

// "s3://bucket/prefix/name": bucket "bucket", key "prefix/name" (may be empty: "s3://bucket",
// "s3://bucket/"). Fatal on anything else.
struct S3Url {
  std::string bucket, key;
  static S3Url parse(const std::string& url);
};

struct S3Object {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // without quotes; "HEX-N" for multipart objects on AWS and Swift
};

// One page of a ListObjectsV2 response. Throws Fatal with the reason on a body that is not a
// ListBucketResult or has a malformed <Contents> entry (public so the fuzz target reaches it).
struct S3ListPage {
  std::vector<S3Object> objects;
  bool truncated = false;
  std::string next_token;
};
S3ListPage parse_list_objects_page(std::string_view xml);

class S3Client {
 public:
  explicit S3Client(S3Config cfg);
  ~S3Client();
  S3Client(S3Client&&) noexcept;
  S3Client& operator=(S3Client&&) noexcept;
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Config& config() const;

  void put_object(const std::string& bucket, const std::string& key, std::string_view body,
                  const std::string& content_type = "application/octet-stream");
  // PutObject with If-None-Match: * (never replaces an object).
  PutResult put_object_if_absent(const std::string& bucket, const std::string& key,
                                 std::string_view body, const std::string& content_type);
  std::string get_object(const std::string& bucket, const std::string& key);
  // Exactly `length` bytes from `offset`, or Fatal (a short or missing range is an error).
  std::string get_range(const std::string& bucket, const std::string& key, uint64_t offset,
                        uint64_t length);
  // nullopt when the key does not exist; Fatal when the bucket does not (NoSuchBucket) or on
  // any other error (a HEAD error response has no body: a GET is made to learn the reason).
  std::optional<S3Object> head_object(const std::string& bucket, const std::string& key);
  // Every object whose key starts with `prefix`, in key order (ListObjectsV2, all pages of at
  // most page_size keys; 1000 is S3's maximum).
  std::vector<S3Object> list_objects(const std::string& bucket, const std::string& prefix,
                                     int page_size = 1000);
  // Succeeds when the key does not exist (as S3 does).
  void delete_object(const std::string& bucket, const std::string& key);

  // Multipart upload: parts 1..10000, each but the last at least 5 MiB (S3's limits).
  // sha256_parts: asks for S3's own per-part SHA-256 checksums (x-amz-checksum-algorithm:
  // SHA256) and sets *sha256_parts to whether the server took it (it echoes the header; servers
  // that ignore it, e.g. Swift s3api, do not): then every part must carry its checksum.
  std::string create_multipart(const std::string& bucket, const std::string& key,
                               const std::string& content_type = "application/octet-stream",
                               bool* sha256_parts = nullptr);  // uploadId
  std::string upload_part(const std::string& bucket, const std::string& key,
                          const std::string& upload_id, int part_number,
                          std::string_view body, const std::string& sha256_hex = "");  // ETag
  // (with sha256_hex: sent as x-amz-checksum-sha256, which the server checks and keeps)
  // parts: (part number, ETag) in any order; sent in ascending part order.
  // if_absent: with If-None-Match: * (Exists when the key is there; servers that ignore the
  // header, e.g. Swift s3api, replace it and say Created). A retry after a lost answer that
  // finds the object ours (its ETag is multipart_etag of these parts) says Created.
  PutResult complete_multipart(const std::string& bucket, const std::string& key,
                               const std::string& upload_id,
                               const std::vector<std::pair<int, std::string>>& parts,
                               bool if_absent = false,
                               const std::map<int, std::string>& part_sha256_hex = {});
  // Every multipart upload in progress under `prefix` (all pages).
  std::vector<S3Upload> list_multipart_uploads(const std::string& bucket, const std::string& prefix,
                                               int page_size = 1000);
  // Best effort: failures are reported through config().notify, never thrown. Returns whether
  // the upload is gone (aborted, or not found).
  bool abort_multipart(const std::string& bucket, const std::string& key,
                       const std::string& upload_id) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A client made from the --s3-endpoint / --s3-region flags and the AWS_* environment when first
// asked for (so a run that never talks to S3 needs no credentials), then kept; thread-safe. The
// cloud destination and the S3 store each own one: there is no process-wide client.
class LazyS3Client {
 public:
  LazyS3Client(std::string endpoint, std::string region, std::string addressing = "");
  ~LazyS3Client();
  LazyS3Client(const LazyS3Client&) = delete;
  LazyS3Client& operator=(const LazyS3Client&) = delete;
  S3Client& get();

 private:
  std::string endpoint_, region_, addressing_;
  std::once_flag once_;
  std::unique_ptr<S3Client> client_;
};

// The cloud destination's plan for an archive of at most `expected` bytes: S3 allows 10,000
// parts per upload (max_parts: tests lower it), 5 GiB per part and 5 TiB per object. The part
// size grows from `requested` (whole MiB) so that the parts stay within max_parts; an archive
// that cannot be one object (over 5 TiB, or parts over 5 GiB) is stored as fragment objects of
// one part each. `split_requested`: --split-chunk-mb (the part size is then the fragment size).
struct CloudPartPlan {
  uint64_t part = 0;
  bool split = false;
};
CloudPartPlan plan_cloud_parts(uint64_t requested, uint64_t expected, bool split_requested,
                               uint64_t max_parts = 10000);

// Whether `s` is an s3:// URL.
bool is_s3_url(const std::string& s);

// Exposed for tests: RFC 3986 percent-encoding (unreserved characters kept, and '/' when
// keep_slash), as SigV4 wants it.
std::string s3_uri_encode(std::string_view s, bool keep_slash);

}  // namespace pbackup
