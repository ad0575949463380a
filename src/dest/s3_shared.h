// The process's S3 client, made on first use from the --s3-endpoint / --s3-region flags and
// the AWS_* environment; shared by the cloud destination and the s3:// restore source.
#pragma once
#include <string>

#include "dest/s3_client.h"

namespace pbackup {

void set_s3_flags(const std::string& endpoint, const std::string& region);
S3Client& shared_s3_client();
bool is_s3_url(const std::string& s);

}  // namespace pbackup
