// Where the awskms provider's AWS credentials come from when its `keys:` entry names none: the
// sources an operator's laptop, a CronJob's pod (IRSA, EKS Pod Identity) or a CI job has, in
// the order the AWS SDKs try them.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "net/http.h"
#include "net/sigv4.h"

namespace ik::providers {

// 1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
// 2. AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (+ AWS_ROLE_SESSION_NAME): STS
//    AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else
//    https://sts.<region>.amazonaws.com;
// 3. the profile (AWS_PROFILE, else "default") in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials)
//    then AWS_CONFIG_FILE (~/.aws/config): aws_access_key_id/aws_secret_access_key/
//    aws_session_token, role_arn + web_identity_token_file, or credential_process;
// 4. AWS_CONTAINER_CREDENTIALS_FULL_URI (+ AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
//    AWS_CONTAINER_AUTHORIZATION_TOKEN) or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI.
// Throws ik::Error(usage) when none is configured, ik::Error(provider) when one fails.
net::sigv4::Credentials aws_default_credentials(const config::Environment& env, const std::string& home,
                                                const std::string& region, const net::TlsOptions& tls);

// The <Credentials> of an AssumeRoleWithWebIdentity answer; ik::Error(provider) naming `where`
// when absent.
net::sigv4::Credentials sts_credentials_of(std::string_view xml, const std::string& where);

// Splits a credential_process command line as the AWS CLI does (POSIX shell words: spaces,
// '…', "…", backslash escapes); no shell runs it.
std::vector<std::string> split_command_line(const std::string& command);

// One [section] of an AWS INI file (credentials or config); empty when absent.
std::map<std::string, std::string> ini_section(const std::string& path, const std::string& section);

}  // namespace ik::providers
