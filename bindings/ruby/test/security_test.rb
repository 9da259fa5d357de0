# frozen_string_literal: true

require_relative "test_helper"
require "digest"
require "pp"
require "securerandom"
require "tempfile"

# Authentication seen from Ruby: default and per-call credentials reach the
# handler's HMS::Call, a bad token raises UnauthenticatedError without
# showing it, and HMS::Credentials never show their token.
class SecurityTest < Minitest::Test
  include HMSTest::RuntimeFixture

  WHO = "creds.v1.Who/Am"

  def setup
    super
    @alice = new_token
    @ops = new_token
    @tokens = Tempfile.new("hms-tokens")
    @tokens.write("#{token_line('alice', 'admin', @alice)}\n#{token_line('ops-bot', 'ops,read', @ops)}\n")
    @tokens.flush
  end

  def teardown
    super
    @tokens.close!
  end

  def new_token
    "hms_#{SecureRandom.urlsafe_base64(24)}"
  end

  # A line of an API tokens file: principal roles
  # sha256:<salt hex>:<hex of SHA-256(salt + token)>.
  def token_line(principal, roles, token)
    salt = SecureRandom.bytes(16)
    "#{principal} #{roles} sha256:#{salt.unpack1('H*')}:#{Digest::SHA256.hexdigest(salt + token)}"
  end

  def secured
    { "security" => { "require_authentication" => true, "api_tokens_file" => @tokens.path } }
  end

  def with_who_am_i(runtime)
    runtime.register_service("creds.v1.Who", "Am" => lambda { |_req, call|
      { "principal" => call.principal, "roles" => call.roles, "attributes" => call.principal_attributes.size }
    })
    runtime
  end

  def test_credentials_never_show_their_token
    [HMS::Credentials.api_key(@alice, principal: "alice"), HMS::Credentials.bearer(@alice)].each do |creds|
      shown = [creds.inspect, creds.to_s, "#{creds}", [creds].inspect, creds.pretty_inspect, { c: creds }.to_s].join
      refute_includes shown, @alice
      assert_includes shown, "<redacted>"
      assert_raises(TypeError) { Marshal.dump(creds) }
    end
    assert_equal({ "scheme" => "bearer", "token" => @alice }, HMS::Credentials.bearer(@alice).to_h)
    assert_equal "alice", HMS::Credentials.api_key(@alice, principal: "alice").principal
  end

  def test_credentials_refuse_an_empty_token
    assert_raises(ArgumentError) { HMS::Credentials.api_key("") }
    assert_raises(ArgumentError) { HMS::Credentials.bearer(nil) }
  end

  def test_without_credentials_a_call_is_unauthenticated
    rt = with_who_am_i(open_runtime(secured))
    error = assert_hms_error(HMS::UnauthenticatedError) { rt.call(WHO, {}) }
    assert_equal "missing", error.details["reason"]
  end

  def test_a_wrong_token_is_unauthenticated_and_not_echoed
    rt = with_who_am_i(open_runtime(secured))
    wrong = new_token
    error = assert_hms_error(HMS::UnauthenticatedError) { rt.call(WHO, {}, credentials: HMS::Credentials.api_key(wrong)) }
    refute_includes "#{error.message} #{error.inspect} #{error.details}", wrong
  end

  def test_the_default_credentials_reach_the_handler
    rt = with_who_am_i(open_runtime(secured, credentials: HMS::Credentials.api_key(@alice)))
    expected = { "principal" => "alice", "roles" => ["admin"], "attributes" => 0 }
    assert_equal expected, rt.call(WHO, {})
    assert_equal expected, HMS::Format.decode(rt.method_handle(WHO, format: :json).call_raw("{}"), HMS::Format::JSON)
  end

  def test_a_calls_credentials_replace_the_default_ones
    rt = with_who_am_i(open_runtime(secured, credentials: HMS::Credentials.api_key(@alice)))
    ops = HMS::Credentials.api_key(@ops)
    expected = { "principal" => "ops-bot", "roles" => %w[ops read], "attributes" => 0 }
    assert_equal expected, rt.call(WHO, {}, credentials: ops)
    assert_equal expected, rt.call(WHO, {}, options: { trace_id: "t", credentials: ops }, timeout: 30)
    assert_equal expected, rt.call(WHO, nil, format: :json, credentials: ops)
    assert_includes rt.call(WHO, "{}", format: :json, credentials: ops), "ops-bot"
    assert_raises(ArgumentError) { rt.call(WHO, "{}", format: :json, options: "{}", credentials: ops) }
  end

  def test_a_typed_call_takes_credentials_too
    skip "google-protobuf is not installed" unless HMS::Proto.available?

    rt = open_runtime(secured, credentials: HMS::Credentials.api_key(@alice))
    request = Hms::Sys::V1::EchoRequest.new(text: "typed")
    assert_equal "typed", rt.call(HMSTest::ECHO, request).text
    assert_hms_error(HMS::UnauthenticatedError) do
      rt.call(HMSTest::ECHO, request, options: Hms::V1::CallOptions.new(trace_id: "t"),
                                      credentials: HMS::Credentials.api_key(new_token))
    end
  end

  def test_default_credentials_merge_with_a_message_config
    skip "google-protobuf is not installed" unless HMS::Proto.available?

    config = Hms::V1::RuntimeConfig.new(name: "merged", security: { require_authentication: true,
                                                                     api_tokens_file: @tokens.path })
    rt = with_who_am_i(open_runtime(config, credentials: HMS::Credentials.api_key(@ops)))
    assert_equal "ops-bot", rt.call(WHO, {})["principal"]
    assert_nil config.security.default_credentials
  end

  def test_default_credentials_need_a_config_that_is_not_bytes
    error = assert_raises(ArgumentError) { HMS::Runtime.new("", credentials: HMS::Credentials.api_key(@alice)) }
    assert_includes error.message, "not bytes"
    assert_raises(TypeError) { HMS::Runtime.new(credentials: @alice) }
  end
end
