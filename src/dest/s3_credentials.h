// The AWS conventions every SDK reads (DESIGN §5): the shared config and credentials files
// (INI, by a small checked parser), and the credential chain in the standard order:
//   1. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN)
//   2. the profile (AWS_PROFILE, else "default") in the credentials file
//      (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials), then static keys in the config
//      file (AWS_CONFIG_FILE, else ~/.aws/config)
//   3. credential_process of the profile (JSON on stdout, Version 1)
//   4. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (or the profile's
//      web_identity_token_file + role_arn) through STS AssumeRoleWithWebIdentity
//   5. EC2 instance metadata, IMDSv2 with a session token (AWS_EC2_METADATA_SERVICE_ENDPOINT,
//      unless AWS_EC2_METADATA_DISABLED=true)
// Temporary credentials (3-5) carry their expiry and a way to fetch new ones.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pbackup {

struct S3Credentials {
  std::string access_key, secret_key, session_token;
  int64_t expires = 0;  // seconds since the epoch; 0: does not expire
  std::string source;   // "environment", "profile NAME in FILE", "credential_process", ...
};

// An INI file as the AWS CLI writes it: [section], key = value, '#'/';' comments, and nested
// settings ("s3 =" then indented "addressing_style = path", stored as "s3.addressing_style").
// Fatal naming file and line on anything else. Keys are lower-cased.
using IniSections = std::map<std::string, std::map<std::string, std::string>>;
IniSections parse_ini(std::string_view text, const std::string& file);

// The settings of one profile from the config file (section "default" or "profile NAME") with
// the credentials file's section NAME over them (keys as in the files).
struct AwsProfile {
  std::string name;
  std::map<std::string, std::string> config, credentials;
  std::string config_file, credentials_file;
  std::string get(const std::string& key) const;  // credentials file first, then config file
};
AwsProfile load_aws_profile();

// The chain above; Fatal with what was tried when nothing gives credentials. `ca_bundle` for
// the https requests to STS.
S3Credentials resolve_credentials(const AwsProfile& p, const std::string& region, const std::string& ca_bundle);
// How to fetch fresh ones for credentials that expire (empty for static ones).
std::function<S3Credentials()> credentials_refresher(const AwsProfile& p, const std::string& region,
                                                     const std::string& ca_bundle, const S3Credentials& got);

// Exposed for tests.
S3Credentials credentials_from_process(const std::string& command);
S3Credentials credentials_from_web_identity(const std::string& token_file, const std::string& role_arn,
                                            const std::string& session_name, const std::string& sts_endpoint,
                                            const std::string& ca_bundle);
S3Credentials credentials_from_imds(const std::string& endpoint);

}  // namespace pbackup
