# frozen_string_literal: true

require_relative "test_helper"

# Services implemented in Ruby: handlers as blocks, lambdas, methods and
# callables, run on the calling Ruby thread; exceptions and jumps stop at
# the boundary.
class ServicesTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  class Doubler
    def call(request)
      { "n" => request["n"] * 2 }
    end
  end

  def greet(request)
    { "text" => "hello #{request['name']}" }
  end

  def test_handlers_as_lambda_method_callable_and_block
    @rt.register_service("demo.v1.Greeter", "Greet" => method(:greet), "Double" => Doubler.new,
                                            "Upper" => ->(req) { { "text" => req["text"].upcase } })
    assert_equal({ "text" => "hello ann" }, @rt.call("demo.v1.Greeter/Greet", { "name" => "ann" }))
    assert_equal({ "n" => 42 }, @rt.call("demo.v1.Greeter/Double", { "n" => 21 }))
    assert_equal({ "text" => "ABC" }, @rt.call("demo.v1.Greeter/Upper", { "text" => "abc" }, format: :json))

    calls = []
    @rt.register_service("demo.v1.Multi", methods: %w[Ping Pong]) do |request, call|
      calls << call.method
      { "method" => call.method, "service" => call.service, "got" => request }
    end
    assert_equal({ "method" => "Ping", "service" => "demo.v1.Multi", "got" => { "a" => 1 } },
                 @rt.call("demo.v1.Multi/Ping", { "a" => 1 }))
    assert_equal "Pong", @rt.call("demo.v1.Multi/Pong", {})["method"]
    assert_equal %w[Ping Pong], calls
  end

  def test_keyword_style_registration_and_service_object
    service = @rt.register_service("demo.v1.Kw", Ping: ->(_) { { "ok" => true } }, version: "1.2.3")
    assert_equal "demo.v1.Kw", service.name
    assert_equal "1.2.3", service.version
    assert_equal ["Ping"], service.method_names
    assert_equal :cbor, service.format
    assert_match(/#<HMS::Service demo\.v1\.Kw handle=0x\h+>/, service.inspect)
    listed = @rt.list_services("demo.v1.Kw").first
    assert_equal "host", listed["origin"]
    assert_equal "1.2.3", listed["version"]
    assert_equal({ "ok" => true }, @rt.call("demo.v1.Kw/Ping", {}))
  end

  def test_registration_errors
    assert_raises(ArgumentError) { @rt.register_service("demo.v1.Empty", {}) }
    assert_raises(ArgumentError) { @rt.register_service("demo.v1.B", methods: ["A"]) }
    assert_raises(ArgumentError) { @rt.register_service("demo.v1.B") { |_| nil } }
    assert_raises(TypeError) { @rt.register_service("demo.v1.B", "A" => 5) }
    assert_raises(ArgumentError) do
      @rt.register_service("demo.v1.B", { "A" => ->(_) {} }, input_types: { "Z" => "hms.sys.v1.EchoRequest" })
    end
    assert_hms_error(HMS::InvalidArgumentError) { @rt.register_service("", "A" => ->(_) {}) }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.register_service("no dots here!", "A" => ->(_) {}) }
    assert_hms_error(HMS::NotFoundError) do
      @rt.register_service("demo.v1.T", { "A" => ->(_) {} }, input_types: { "A" => "demo.v1.Unknown" },
                                                              output_types: { "A" => "demo.v1.Unknown" })
    end
    @rt.register_service("demo.v1.Dup", "A" => ->(_) {})
    error = assert_hms_error(HMS::AlreadyExistsError) { @rt.register_service("demo.v1.Dup", "A" => ->(_) {}) }
    assert_includes error.status_message, "demo.v1.Dup"
    assert_equal 0, @rt.list_services("demo.v1.T").size, "failed registrations leave nothing behind"
  end

  def test_handler_exceptions_become_handler_error
    @rt.register_service("demo.v1.Raise",
                         "Boom" => ->(_) { raise ArgumentError, "bad thing" },
                         "Deny" => ->(_) { raise HMS::PermissionDeniedError, "not you" },
                         "Stack" => ->(_) { recurse = ->(n) { recurse.call(n + 1) }; recurse.call(0) },
                         "Exit" => ->(_) { exit 3 },
                         "Garbage" => ->(_) { Object.new },
                         "Fine" => ->(_) { { "ok" => 1 } })
    error = assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Raise/Boom", {}) }
    assert_equal "ArgumentError: bad thing", error.status_message
    assert_equal "demo.v1.Raise/Boom", error.origin
    denied = assert_hms_error(HMS::PermissionDeniedError) { @rt.call("demo.v1.Raise/Deny", {}) }
    assert_equal "not you", denied.status_message
    assert_match(/SystemStackError/, assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Raise/Stack", {}) }.message)
    assert_match(/SystemExit/, assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Raise/Exit", {}) }.message)
    assert_match(/does not encode/, assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Raise/Garbage", {}) }.message)
    # every format sees the same error, and the service goes on
    %i[json cbor].each do |format|
      assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Raise/Boom", {}, format: format) }
    end
    assert_equal({ "ok" => 1 }, @rt.call("demo.v1.Raise/Fine", {}))
  end

  def test_throw_and_break_never_unwind_through_the_library
    @rt.register_service("demo.v1.Jump", "Throw" => ->(_) { throw :outside, :escaped })
    reached = catch(:outside) do
      error = assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Jump/Throw", {}) }
      assert_includes error.status_message, "non-local"
      :returned_normally
    end
    assert_equal :returned_normally, reached
    @rt.register_service("demo.v1.Break", methods: ["Go"]) { |_| break :gone }
    assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Break/Go", {}) }
    assert_equal({ "text" => "ok" }, @rt.call(ECHO, { "text" => "ok" }))
  end

  def test_handlers_reenter_the_runtime
    @rt.register_service("demo.v1.Nest", "Depth" => lambda { |req|
      n = req["n"]
      inner = n.zero? ? {} : @rt.call("demo.v1.Nest/Depth", { "n" => n - 1 })
      echo = @rt.call(ECHO, { "text" => "level #{n}" })
      { "n" => n, "echo" => echo["text"], "inner" => inner }
    })
    reply = @rt.call("demo.v1.Nest/Depth", { "n" => 5 })
    depth = 0
    node = reply
    while node.key?("inner") && !node["inner"].empty?
      assert_equal "level #{node['n']}", node["echo"]
      node = node["inner"]
      depth += 1
    end
    assert_equal 5, depth
    # the outer call's buffers were not disturbed by the nested calls
    assert_equal({ "text" => "after" }, @rt.call(ECHO, { "text" => "after" }))
  end

  def test_typed_protobuf_service
    seen = []
    @rt.register_service("demo.v1.Typed",
                         { "Echo" => lambda { |req|
                           seen << req.class
                           Hms::Sys::V1::EchoResponse.new(text: req.text.reverse, payload: req.payload)
                         }, "Hash" => ->(req) { { text: req.text } }, "Bad" => ->(_) { "not a message" } },
                         input_types: { "Echo" => Hms::Sys::V1::EchoRequest, "Hash" => Hms::Sys::V1::EchoRequest,
                                        "Bad" => Hms::Sys::V1::EchoRequest },
                         output_types: { "Echo" => Hms::Sys::V1::EchoResponse, "Hash" => Hms::Sys::V1::EchoResponse,
                                         "Bad" => Hms::Sys::V1::EchoResponse })
    reply = @rt.call("demo.v1.Typed/Echo", Hms::Sys::V1::EchoRequest.new(text: "abc", payload: "\x01".b))
    assert_equal "cba", reply.text
    assert_equal({ "text" => "zyx" }, @rt.call("demo.v1.Typed/Echo", { "text" => "xyz" }))
    assert_equal({ "text" => "j" }, @rt.call("demo.v1.Typed/Echo", { "text" => "j" }, format: :json))
    assert_equal({ "text" => "h" }, @rt.call("demo.v1.Typed/Hash", { "text" => "h" }))
    assert_equal [Hms::Sys::V1::EchoRequest], seen.uniq
    assert_hms_error(HMS::HandlerError) { @rt.call("demo.v1.Typed/Bad", {}) }
    assert_hms_error(HMS::DecodeError) { @rt.call("demo.v1.Typed/Echo", { "nope" => [1] , "text" => 3 }) }
  end

  def test_call_context_reports_the_deadline
    remaining = []
    @rt.register_service("demo.v1.Clock", "Left" => ->(_req, call) { remaining << call.remaining_ms; {} })
    @rt.call("demo.v1.Clock/Left", {})
    @rt.call("demo.v1.Clock/Left", {}, timeout: 30)
    assert_nil remaining[0]
    assert_operator remaining[1], :>, 0
    assert_operator remaining[1], :<=, 30_000
  end

  def test_deadline_is_checked_when_a_slow_handler_returns
    @rt.register_service("demo.v1.Slow", "Nap" => ->(_) { sleep 0.2; {} })
    assert_hms_error(HMS::DeadlineExceededError) { @rt.call("demo.v1.Slow/Nap", {}, timeout: 0.05) }
    assert_equal({}, @rt.call("demo.v1.Slow/Nap", {}, timeout: 5))
  end

  def test_handlers_run_on_the_calling_ruby_thread
    threads = []
    @rt.register_service("demo.v1.Where", "Me" => ->(_) { threads << Thread.current; {} })
    @rt.call("demo.v1.Where/Me", {})
    other = Thread.new { @rt.call("demo.v1.Where/Me", {}) }
    other.join
    assert_equal [Thread.current, other], threads
  end

  def test_close_unregisters_and_is_idempotent
    events = @rt.subscribe(kinds: "registry.*", subjects: "demo.v1.Temp")
    service = @rt.register_service("demo.v1.Temp", "Ping" => ->(_) { {} })
    assert_equal({}, @rt.call("demo.v1.Temp/Ping", {}))
    assert_nil service.close
    assert service.closed?
    assert_nil service.close
    assert_hms_error(HMS::NotFoundError) { @rt.call("demo.v1.Temp/Ping", {}) }
    assert_equal %w[registry.service_registered registry.service_unregistered],
                 events.each_event(200).map { |e| e["kind"] }
    # the name is free again
    again = @rt.register_service("demo.v1.Temp", "Ping" => ->(_) { { "v" => 2 } })
    assert_equal({ "v" => 2 }, @rt.call("demo.v1.Temp/Ping", {}))
    again.close
  end

  def test_a_handler_may_unregister_its_own_service
    holder = []
    holder << @rt.register_service("demo.v1.Once", "Go" => lambda { |_|
      holder.first.close
      { "closed" => holder.first.closed? }
    })
    assert_equal({ "closed" => true }, @rt.call("demo.v1.Once/Go", {}))
    assert_hms_error(HMS::NotFoundError) { @rt.call("demo.v1.Once/Go", {}) }
  end

  def test_closing_the_runtime_inside_its_handler_is_refused
    @rt.register_service("demo.v1.Closer", "Close" => ->(_) { @rt.close; {} })
    error = assert_hms_error(HMS::FailedPreconditionError) { @rt.call("demo.v1.Closer/Close", {}) }
    assert_includes error.status_message, "inside one of its own handlers"
    refute @rt.closed?
  end

  def test_handlers_survive_garbage_collection
    @rt.register_service("demo.v1.Gc", "Keep" => ->(req) { { "kept" => req["x"] } })
    GC.start
    GC.compact if GC.respond_to?(:compact)
    assert_equal({ "kept" => 7 }, @rt.call("demo.v1.Gc/Keep", { "x" => 7 }))
  end

  # Thread#raise aimed at a thread inside a Ruby handler waits until the
  # call is back in Ruby: it never unwinds through the library's frames.
  def test_asynchronous_exceptions_are_deferred_past_the_library
    started = Queue.new
    finished = []
    @rt.register_service("demo.v1.Busy", "Work" => lambda { |_|
      started << true
      sleep 0.3
      finished << :handler_done
      { "done" => true }
    })
    worker = Thread.new do
      Thread.current.report_on_exception = false
      @rt.call("demo.v1.Busy/Work", {})
      finished << :after_call
      sleep 5
    end
    started.pop
    worker.raise(RuntimeError, "interrupt")
    error = assert_raises(RuntimeError) { worker.join }
    assert_equal "interrupt", error.message
    # the handler ran to its end and answered; the exception surfaced in
    # Ruby once hms_call had returned, in place of the call's result
    assert_equal %i[handler_done], finished
    assert_equal({ "text" => "alive" }, @rt.call(ECHO, { "text" => "alive" }))
  end

  def test_several_ruby_threads_at_once
    @rt.register_service("demo.v1.Count", "Add" => ->(req) { { "sum" => req["a"] + req["b"] } })
    results = Array.new(8) do |t|
      Thread.new do
        Array.new(200) do |i|
          echo = @rt.call(ECHO, { "text" => "t#{t}-#{i}" })["text"]
          sum = @rt.call("demo.v1.Count/Add", { "a" => t, "b" => i })["sum"]
          [echo == "t#{t}-#{i}", sum == t + i]
        end
      end
    end.map(&:value)
    assert_equal 8 * 200, results.flatten(1).size
    assert(results.flatten.all?)
  end

  def test_threads_with_errors_and_deadlines
    @rt.register_service("demo.v1.Mixed", "Fail" => ->(_) { raise "boom" }, "Nap" => ->(_) { sleep 0.05; {} },
                                          "Ok" => ->(req) { req })
    outcomes = Array.new(6) do |t|
      Thread.new do
        Array.new(20) do |i|
          case (t + i) % 3
          when 0 then @rt.call("demo.v1.Mixed/Fail", {})
          when 1 then @rt.call("demo.v1.Mixed/Nap", {}, timeout: 0.01)
          else @rt.call("demo.v1.Mixed/Ok", { "i" => i })["i"] == i ? :ok : :wrong
          end
        rescue HMS::HandlerError
          :handler_error
        rescue HMS::DeadlineExceededError
          :deadline
        end
      end
    end.flat_map(&:value)
    assert_equal 40, outcomes.count(:ok)
    assert_equal 40, outcomes.count(:handler_error)
    assert_equal 40, outcomes.count(:deadline)
  end

  def test_runtime_closed_while_other_threads_call
    rt = HMS::Runtime.new
    rt.register_service("demo.v1.Busy", "Ping" => ->(_) { {} })
    started = Queue.new
    callers = Array.new(4) do
      Thread.new do
        started << true
        loop do
          rt.call("demo.v1.Busy/Ping", {})
          rt.call(ECHO, { "text" => "x" })
        end
      rescue HMS::ClosedError, HMS::InvalidHandleError, HMS::NotFoundError, HMS::UnavailableError => e
        e.class
      end
    end
    4.times { started.pop }
    sleep 0.05
    rt.close
    ends = callers.map(&:value)
    assert(ends.all? { |klass| klass <= HMS::Error }, ends.inspect)
    assert_raises(HMS::ClosedError) { rt.call(ECHO, {}) }
  end

  def test_threads_register_and_unregister_while_others_call
    stop = false
    ready = Queue.new
    caller_threads = Array.new(3) do
      Thread.new do
        count = 0
        @rt.call(ECHO, { "text" => "first" })
        ready << true
        until stop
          @rt.call(ECHO, { "text" => "x" })
          count += 1
        end
        count
      end
    end
    3.times { ready.pop }
    20.times do |i|
      svc = @rt.register_service("demo.v1.Churn#{i}", "Ping" => ->(_) { { "i" => i } })
      assert_equal({ "i" => i }, @rt.call("demo.v1.Churn#{i}/Ping", {}))
      svc.close
    end
    stop = true
    assert(caller_threads.map(&:value).all?(Integer), "every caller thread ran to its end without an error")
    assert_equal({ "text" => "end" }, @rt.call(ECHO, { "text" => "end" }))
  end
end
