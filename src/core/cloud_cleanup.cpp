// See cloud_cleanup.h.
#include "core/cloud_cleanup.h"

#include <algorithm>
#include <chrono>

#include "dest/s3_client.h"
#include "pbackup/error.h"

namespace pbackup {

S3ReportsToLog::S3ReportsToLog(Log& log) {
  set_s3_notify([&log](const std::string& m) { log.notice(m); });
}
S3ReportsToLog::~S3ReportsToLog() { set_s3_notify(nullptr); }

int run_cloud_cleanup(const CleanupOptions& opt, Log& log) {
  try {
    S3Url u = S3Url::parse(opt.source);
    // A key without '/' at its end is a folder (as backup --output-dir takes it) or one object's
    // key (as the failed run's message names it): uploads of that key or under that folder,
    // never of a sibling that merely starts the same ("proj" is not "proj-old/...").
    std::string exact;
    if (!u.key.empty() && u.key.back() != '/') exact = u.key;
    S3Client c(S3Config::from_env(opt.s3_endpoint, opt.s3_region, opt.s3_addressing));
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::vector<S3Upload> all = c.list_multipart_uploads(u.bucket, u.key);
    size_t aborted = 0, kept = 0, failed = 0;
    if (!exact.empty())
      all.erase(std::remove_if(all.begin(), all.end(),
                               [&](const S3Upload& up) { return up.key != exact && up.key.compare(0, exact.size() + 1, exact + "/") != 0; }),
                all.end());
    for (const S3Upload& up : all) {
      std::string where = "s3://" + u.bucket + "/" + up.key + " (upload " + up.upload_id + ", started " +
                          (up.initiated.empty() ? "at an unknown time" : up.initiated) + ")";
      if (opt.older_than_s > 0) {
        std::optional<int64_t> t = parse_s3_time(up.initiated);
        if (!t) {
          log.notice("kept " + where + ": its start time cannot be read");
          ++kept;
          continue;
        }
        if (now - *t < opt.older_than_s) {
          ++kept;
          continue;
        }
      }
      if (opt.dry_run) {
        std::printf("would abort %s\n", where.c_str());
        continue;
      }
      if (c.abort_multipart(u.bucket, up.key, up.upload_id)) {
        std::printf("aborted %s\n", where.c_str());
        ++aborted;
      } else {
        log.error("could not abort " + where);
        ++failed;
      }
    }
    std::fflush(stdout);
    log.info("cloud-cleanup: " + std::to_string(all.size()) + " uploads in progress under " + opt.source + ": " +
             std::to_string(aborted) + " aborted, " + std::to_string(kept) + " kept (newer than --older-than), " +
             std::to_string(failed) + " failed");
    return failed ? kExitFatal : kExitOk;
  } catch (const std::exception& e) {
    log.error(e.what());
    return kExitFatal;
  }
}

}  // namespace pbackup
