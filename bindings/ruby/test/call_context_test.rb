# frozen_string_literal: true

require_relative "test_helper"

# What a Ruby handler sees of its call (HMS::Call, ABI 1.2) and the
# structured errors it raises back to its caller.
class CallContextTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  TRACED = { "metadata" => { "tenant" => "acme", "ünï" => "cödé" }, "trace_id" => "trace-42" }.freeze

  def test_the_second_argument_reads_method_metadata_and_trace_id
    seen = []
    @rt.register_service("ctx.v1.Svc", "Look" => lambda { |_req, call|
      seen << [call.full_method, call.metadata, call.trace_id, call.principal, call.remaining_ms]
      {}
    })
    @rt.call("ctx.v1.Svc/Look", {}, options: TRACED)
    @rt.call("ctx.v1.Svc/Look", {}, options: TRACED, timeout: 30)
    seen.each do |method, metadata, trace_id, principal, _|
      assert_equal "ctx.v1.Svc/Look", method
      assert_equal({ "tenant" => "acme", "ünï" => "cödé" }, metadata)
      assert_predicate metadata, :frozen?
      assert_equal "trace-42", trace_id
      assert_equal "", principal
    end
    assert_nil seen[0][4]
    assert_operator seen[1][4], :>, 0
    assert_operator seen[1][4], :<=, 30_000
  end

  def test_a_call_without_options_has_empty_metadata
    seen = nil
    @rt.register_service("ctx.v1.Bare", methods: ["Call"]) do |_req, call|
      seen = [call.full_method, call.metadata, call.trace_id]
      {}
    end
    @rt.call("ctx.v1.Bare/Call", {})
    assert_equal ["ctx.v1.Bare/Call", {}, ""], seen
  end

  def test_the_call_is_refused_once_the_handler_returned
    kept = nil
    @rt.register_service("ctx.v1.Keep", "Keep" => ->(_req, call) { kept = call; {} })
    @rt.call("ctx.v1.Keep/Keep", {})
    assert_raises(HMS::FailedPreconditionError) { kept.metadata }
    assert_raises(HMS::FailedPreconditionError) { kept.remaining_ms }
  end

  def test_raised_details_and_origin_reach_the_caller_in_every_format
    @rt.register_service("ctx.v1.Deny", "Read" => lambda { |_req|
      raise HMS::PermissionDeniedError.new("tenant acme may not read this",
                                           details: { "rule" => "tenant-isolation", "tenant" => "acme" },
                                           origin: "policy.v1.Engine")
    })
    formats = [nil, :json]
    formats << :cbor if HMS::Format.cbor?
    formats.each do |format|
      error = assert_raises(HMS::PermissionDeniedError) { @rt.call("ctx.v1.Deny/Read", {}, format: format) }
      assert_equal "tenant acme may not read this", error.status_message
      assert_equal({ "rule" => "tenant-isolation", "tenant" => "acme" }, error.details)
      assert_equal "policy.v1.Engine", error.origin
    end
  end

  def test_an_error_without_origin_names_the_method
    @rt.register_service("ctx.v1.Fail", "Do" => lambda { |_req|
      raise HMS::Error.new("no luck", code: 4242, details: { "attempt" => 3 })
    })
    error = assert_raises(HMS::UnknownError) { @rt.call("ctx.v1.Fail/Do", {}) }
    assert_equal({ "attempt" => "3" }, error.details)
    assert_equal "ctx.v1.Fail/Do", error.origin
  end
end
