// `pbackup cloud-cleanup`: lists and aborts the multipart uploads in progress under an s3://
// prefix (those a killed or failed backup could not abort), never touching completed objects;
// and the hook that sends the S3 client's reports to a run's log.
#pragma once
#include "pbackup/log.h"
#include "pbackup/options.h"

namespace pbackup {

// Exit status: 0 every listed upload is gone (or there was none), 2 on an error.
int run_cloud_cleanup(const CleanupOptions& opt, Log& log);

// While it lives, the S3 client's reports (retries, uploads or objects left behind) go to the
// log's warning lines, which do not change the exit status.
class S3ReportsToLog {
 public:
  explicit S3ReportsToLog(Log& log);
  ~S3ReportsToLog();
  S3ReportsToLog(const S3ReportsToLog&) = delete;
  S3ReportsToLog& operator=(const S3ReportsToLog&) = delete;
};

}  // namespace pbackup
