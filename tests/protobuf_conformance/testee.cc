// Testee of the official protobuf conformance suite (conformance_test_runner
// from the protobuf 3.21 sources) that converts through the core's C ABI.
//
// Protocol (conformance/conformance.proto): the runner writes, on our stdin,
// a little-endian uint32 length then a ConformanceRequest; we answer on
// stdout the same way with a ConformanceResponse, until EOF on stdin.
//
// Every conversion goes through hms_runtime_convert(rt, type, from, payload,
// to), under one runtime created at startup: the point is to test the core's
// codec, so libprotobuf is used here only to read requests and write
// responses, never to touch a payload.
//
// HMS_CONFORMANCE_DESCRIPTOR_SET names a FileDescriptorSet (protoc
// --include_imports) holding protobuf_test_messages.proto2/proto3 and their
// google/protobuf imports, registered once with hms_schema_register at
// startup.
//
// HMS_CONFORMANCE_JSON_NAMES selects the JSON field names the core writes,
// through the runtime's hms.v1.RuntimeConfig.json_names:
//   proto (default)  the proto field names (JSON_NAMES_PROTO, the default of
//                    the core and what hms_convert writes);
//   json             lowerCamelCase json_name (JSON_NAMES_LOWER_CAMEL_CASE),
//                    the default of protobuf's own JSON printers.
// scripts/protobuf_conformance.sh runs the suite once in each mode.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include <unistd.h>

#include "conformance.pb.h"
#include "hms_ffi.h"

namespace {

using conformance::ConformanceRequest;
using conformance::ConformanceResponse;

enum class JsonNames { kProto, kJson };

bool ParseJsonNames(const char *text, JsonNames *out) {
    if (text == nullptr || *text == '\0' || std::strcmp(text, "proto") == 0) {
        *out = JsonNames::kProto;
        return true;
    }
    if (std::strcmp(text, "json") == 0) {
        *out = JsonNames::kJson;
        return true;
    }
    return false;
}

// The hms.v1.RuntimeConfig (in JSON) of the runtime that converts in the
// given naming mode; the limits stay the defaults (4 MiB, depth 64).
const char *RuntimeConfigJson(JsonNames mode) {
    switch (mode) {
        case JsonNames::kProto:
            return "{\"jsonNames\":\"JSON_NAMES_PROTO\"}";
        case JsonNames::kJson:
            return "{\"jsonNames\":\"JSON_NAMES_LOWER_CAMEL_CASE\"}";
    }
    return "{}";
}

// Reads exactly len bytes; false on EOF before the first byte. A short read
// after that is a broken pipe from the runner, which we cannot answer.
bool ReadAll(void *buf, size_t len) {
    auto *p = static_cast<char *>(buf);
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(STDIN_FILENO, p + done, len - done);
        if (n == 0) {
            if (done == 0) return false;
            std::fprintf(stderr, "testee: unexpected EOF inside a request\n");
            std::exit(1);
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("testee: read");
            std::exit(1);
        }
        done += static_cast<size_t>(n);
    }
    return true;
}

void WriteAll(const void *buf, size_t len) {
    const auto *p = static_cast<const char *>(buf);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(STDOUT_FILENO, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("testee: write");
            std::exit(1);
        }
        done += static_cast<size_t>(n);
    }
}

std::string BufText(const hms_buf &buf) {
    if (buf.data == nullptr) return std::string();
    return std::string(reinterpret_cast<const char *>(buf.data), buf.len);
}

// Status codes that mean "the input is not a valid message of this type":
// the core reports a malformed payload as DECODE_ERROR, a value out of its
// range (e.g. a Timestamp past year 9999) as OUT_OF_RANGE or
// INVALID_ARGUMENT, and nesting past its limit as RESOURCE_EXHAUSTED.
bool IsInputError(int32_t code) {
    switch (code) {
        case HMS_DECODE_ERROR:
        case HMS_INVALID_ARGUMENT:
        case HMS_OUT_OF_RANGE:
        case HMS_RESOURCE_EXHAUSTED:
            return true;
        default:
            return false;
    }
}

class Testee {
  public:
    explicit Testee(hms_runtime rt) : rt_(rt) {}
    ~Testee() {
        hms_buf_free(&out_);
        hms_buf_free(&err_);
        hms_buf_free(&probe_);
    }
    Testee(const Testee &) = delete;
    Testee &operator=(const Testee &) = delete;

    void Serve(const ConformanceRequest &req, ConformanceResponse *resp) {
        // Only the binary and JSON suites are in scope: the core has no text
        // format, and JSPB is Google-internal (the protocol says to skip it).
        int32_t from = 0;
        const std::string *payload = nullptr;
        switch (req.payload_case()) {
            case ConformanceRequest::kProtobufPayload:
                from = HMS_FORMAT_PROTOBUF;
                payload = &req.protobuf_payload();
                break;
            case ConformanceRequest::kJsonPayload:
                from = HMS_FORMAT_JSON;
                payload = &req.json_payload();
                break;
            case ConformanceRequest::kTextPayload:
                resp->set_skipped("the core has no text format");
                return;
            case ConformanceRequest::kJspbPayload:
                resp->set_skipped("JSPB is not supported");
                return;
            case ConformanceRequest::PAYLOAD_NOT_SET:
                resp->set_runtime_error("request has no payload");
                return;
        }

        int32_t to = 0;
        switch (req.requested_output_format()) {
            case conformance::PROTOBUF:
                to = HMS_FORMAT_PROTOBUF;
                break;
            case conformance::JSON:
                to = HMS_FORMAT_JSON;
                break;
            case conformance::TEXT_FORMAT:
                resp->set_skipped("the core has no text format");
                return;
            case conformance::JSPB:
                resp->set_skipped("JSPB is not supported");
                return;
            default:
                resp->set_runtime_error("unspecified output format");
                return;
        }

        const std::string &type = req.message_type();
        int32_t rc = hms_runtime_convert(rt_, type.data(), type.size(), from,
                                         reinterpret_cast<const uint8_t *>(payload->data()),
                                         payload->size(), to, &out_, &err_);
        if (rc == HMS_OK) {
            if (to == HMS_FORMAT_PROTOBUF) {
                resp->set_protobuf_payload(BufText(out_));
            } else {
                resp->set_json_payload(BufText(out_));
            }
            return;
        }

        std::string detail = "hms_runtime_convert " + std::to_string(rc) + ": " + BufText(err_);
        if (!IsInputError(rc)) {
            // NOT_FOUND (type not registered), PANIC, INTERNAL...: the
            // testee or the core is broken, not the payload.
            resp->set_runtime_error(detail);
            return;
        }
        // The core decodes and encodes in one call, so an input error code
        // does not say which half failed. Decoding alone (to protobuf, which
        // cannot fail to encode a decoded message) tells them apart: the
        // suite expects parse_error for bad input, serialize_error for a
        // message that parses but has no representation in the output format
        // (e.g. a Duration out of the JSON range).
        if (to != HMS_FORMAT_PROTOBUF &&
            hms_runtime_convert(rt_, type.data(), type.size(), from,
                                reinterpret_cast<const uint8_t *>(payload->data()),
                                payload->size(), HMS_FORMAT_PROTOBUF, &probe_,
                                nullptr) == HMS_OK) {
            resp->set_serialize_error(detail);
        } else {
            resp->set_parse_error(detail);
        }
    }

  private:
    hms_runtime rt_;
    // One reusable output buffer each, as hms_ffi.h recommends: the core
    // grows them as needed and they are freed once at exit.
    hms_buf out_ = {};
    hms_buf err_ = {};
    hms_buf probe_ = {};
};

// A runtime converting in the given naming mode, or 0 (reported) when the
// core refuses its configuration.
hms_runtime NewRuntime(JsonNames mode) {
    const char *config = RuntimeConfigJson(mode);
    hms_runtime rt = 0;
    hms_buf err = {};
    int32_t rc = hms_runtime_new(HMS_FORMAT_JSON, reinterpret_cast<const uint8_t *>(config),
                                 std::strlen(config), &rt, &err);
    if (rc != HMS_OK) {
        std::fprintf(stderr, "testee: hms_runtime_new(%s) failed (%d): %s\n", config,
                     static_cast<int>(rc), BufText(err).c_str());
        rt = 0;
    }
    hms_buf_free(&err);
    return rt;
}

bool RegisterSchemas(const char *path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "testee: cannot open %s\n", path);
        return false;
    }
    std::string fds((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    hms_buf err = {};
    int32_t rc = hms_schema_register(reinterpret_cast<const uint8_t *>(fds.data()),
                                     fds.size(), &err);
    if (rc != HMS_OK) {
        std::fprintf(stderr, "testee: hms_schema_register(%s) failed (%d): %s\n", path,
                     static_cast<int>(rc), BufText(err).c_str());
    }
    hms_buf_free(&err);
    return rc == HMS_OK;
}

// Answers the runner's requests until EOF on stdin; the exit status.
int Serve(hms_runtime rt) {
    Testee testee(rt);
    std::string in;
    std::string out;
    ConformanceRequest req;
    ConformanceResponse resp;
    for (;;) {
        uint32_t len = 0;
        if (!ReadAll(&len, sizeof len)) break;  // EOF: the runner is done
        in.resize(len);
        if (len > 0 && !ReadAll(&in[0], len)) {
            std::fprintf(stderr, "testee: unexpected EOF inside a request\n");
            return 1;
        }
        resp.Clear();
        if (!req.ParseFromString(in)) {
            resp.set_runtime_error("ConformanceRequest does not parse");
        } else {
            testee.Serve(req, &resp);
        }
        if (!resp.SerializeToString(&out)) {
            std::fprintf(stderr, "testee: cannot serialize a ConformanceResponse\n");
            return 1;
        }
        uint32_t out_len = static_cast<uint32_t>(out.size());
        WriteAll(&out_len, sizeof out_len);
        WriteAll(out.data(), out.size());
    }
    return 0;
}

}  // namespace

int main(int /*argc*/, char **argv) {
    // Other arguments are ignored: the 3.21 runner passes the program's own
    // path again as argv[1], so the settings travel in the environment.
    const char *fds = std::getenv("HMS_CONFORMANCE_DESCRIPTOR_SET");
    if (fds == nullptr || *fds == '\0') {
        std::fprintf(stderr,
                     "usage: HMS_CONFORMANCE_DESCRIPTOR_SET=FILE [HMS_CONFORMANCE_JSON_NAMES=proto|json] %s\n"
                     "         (run by conformance_test_runner)\n",
                     argv[0]);
        return 2;
    }
    JsonNames names;
    const char *mode = std::getenv("HMS_CONFORMANCE_JSON_NAMES");
    if (!ParseJsonNames(mode, &names)) {
        std::fprintf(stderr, "testee: HMS_CONFORMANCE_JSON_NAMES=%s: expected proto or json\n",
                     mode);
        return 2;
    }
    if (!RegisterSchemas(fds)) return 1;
    hms_runtime rt = NewRuntime(names);
    if (rt == 0) return 1;

    int status = Serve(rt);
    hms_runtime_free(rt);
    return status;
}
