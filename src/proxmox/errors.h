// How Proxmox failures become Status codes.
//
// Proxmox answers almost every handler failure with HTTP 500 and puts the
// text in the reason phrase (and, since libpve-http-server-perl 5.2.0, also in
// a "message" field of the body). The code therefore comes mostly from the
// text. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/common/status.h"

namespace nixmox::proxmox {

// The code a Proxmox error text implies, if it is one we recognise:
//   "... is locked (...)", "can't lock file ... got timeout",
//   "cfs-lock ... got lock request timeout"                      -> kLocked
//   "... does not exist", "no such task"                           -> kNotFound
//   "... already exists ..."                                       -> kAlreadyExists
//   "checksum mismatch", "... not running", "... is running",
//   "already running", "protection mode enabled", "is paused",
//   "can't migrate running VM without --online"                    -> kConflict
//     (the object is not in the state the call needs; re-observe)
//   "no options specified", "shrinking disks is not supported",
//   "Only root ...", "wrong file extension", ...                   -> kInvalid
//     (refused however often it is sent)
std::optional<Code> CodeFromMessage(std::string_view message);

// The Status for a non-2xx response. `mutating` is false for GET.
//   400 with "errors"                      -> kInvalid with one FieldError per parameter
//                                             (kAlreadyExists when they say so)
//   401                                    -> kUnauthorized
//   403                                    -> kForbidden (credentials fine, ACL missing:
//                                             a different fix than a bad token)
//   404                                    -> kNotFound
//   429                                    -> kTooManyRequests (Retry-After honoured by caller)
//   501                                    -> kInvalid (no such API path or method)
//   a recognised text (CodeFromMessage)    -> that code
//   596/597/599/504 on a mutation          -> kOutcomeUnknown: the proxy gave up waiting but
//                                             the handler behind it keeps running
//   other 5xx                              -> kRetryable
//   other 4xx                              -> kInvalid
// The message is the body's "message" when present, else the reason phrase.
Status StatusFromResponse(bool mutating, int http_status, std::string_view reason,
                          std::string_view body);

// The error text of a response: body "message" (trimmed), else the reason phrase.
std::string ResponseMessage(int http_status, std::string_view reason, std::string_view body);

// OK when a stopped task's exitstatus means success ("OK" or "WARNINGS: n");
// otherwise the task's error text, classified by CodeFromMessage and kInternal
// when unrecognised (the task ran and failed; repeating it unchanged rarely helps).
Status StatusFromExitStatus(std::string_view exitstatus);

}  // namespace nixmox::proxmox
