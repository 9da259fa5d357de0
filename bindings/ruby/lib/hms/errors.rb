# frozen_string_literal: true

require_relative "abi"

module HMS
  # The HMS_* status codes of include/hms_ffi.h, read from the generated ABI
  # table (never restated by hand): HMS::Status::NOT_FOUND == 5, ...
  module Status
    prefixes = /\AHMS_(?:FORMAT|ABI|SERVICE|BATCH)_/
    CODES = ABI::CONSTANTS.each_with_object({}) do |(name, value), codes|
      next if name.to_s.match?(prefixes)

      short = name.to_s.delete_prefix("HMS_").to_sym
      const_set(short, value)
      codes[value] = short
    end.freeze

    # :NOT_FOUND for 5; nil for a code this binding does not know.
    def self.name_of(code)
      CODES[code]
    end
  end

  # An HMS call failed. Mirrors hms.v1.Status: #code (Integer, an
  # HMS::Status value), #code_name (:NOT_FOUND), #status_message (the
  # library's text), #details (String => String facts) and #origin (the
  # component or method that raised it). #message reads
  # "[NOT_FOUND] text (origin: registry)".
  #
  # Every status code has its subclass (HMS::NotFoundError, ...); rescue one
  # of them to branch on a code, or HMS::Error for all.
  class Error < StandardError
    # The status code of the subclass; UNKNOWN on HMS::Error itself.
    def self.code
      Status::UNKNOWN
    end

    attr_reader :code, :status_message, :details, :origin

    def initialize(status_message = "", code: nil, details: nil, origin: "")
      @code = code.nil? ? self.class.code : Integer(code)
      @status_message = status_message.to_s
      @details = (details || {}).to_h { |k, v| [k.to_s, v.to_s] }.freeze
      @origin = origin.to_s
      super(format_message)
    end

    # :NOT_FOUND, or the number for a code this binding does not know.
    def code_name
      Status.name_of(@code) || @code
    end

    def to_h
      { code: @code, message: @status_message, details: @details, origin: @origin }
    end

    # The exception of the subclass matching +code+ (HMS::Error for a code
    # this binding does not know; UnknownError for OK, which is no error).
    def self.from_status(code, message = "", details = nil, origin = "")
      code = Integer(code)
      klass = BY_CODE.fetch(code, Error)
      klass = UnknownError if code == Status::OK
      klass.new(message, code: klass == Error ? code : klass.code, details: details, origin: origin)
    end

    private

    def format_message
      text = @status_message.empty? ? "[#{code_name}]" : "[#{code_name}] #{@status_message}"
      @origin.empty? ? text : "#{text} (origin: #{@origin})"
    end
  end

  by_code = {}
  Status::CODES.each do |code, short|
    next if code == Status::OK

    words = short.to_s.split("_").map(&:capitalize).join
    class_name = words.end_with?("Error") ? words : "#{words}Error"
    klass = Class.new(Error) { define_singleton_method(:code) { code } }
    const_set(class_name, klass)
    by_code[code] = klass
  end
  Error.const_set(:BY_CODE, by_code.freeze)

  # libhms_ffi could not be loaded: not found in any place of the search
  # order (HMS::Native.load_library), an explicit setting (a path given to
  # load_library, HMS_FFI_LIBRARY, HMS_FFI_PYTHON) that points at nothing,
  # a file that exists but does not load, or HMS_BACKEND=ffi without the ffi
  # gem. #message lists every place looked at and how to fix it; #searched
  # holds those places, one String each.
  #
  # A StandardError, so a bare `rescue => e` catches it: Ruby's own
  # ::LoadError is a ScriptError, which that does not catch. Not an
  # HMS::Error: no call ran, so there is no status code.
  class LoadError < StandardError
    attr_reader :searched

    def initialize(message, searched: [])
      @searched = searched.map(&:to_s).freeze
      super(message)
    end
  end

  # A Runtime, Service, Subscription or MethodHandle used after #close (or
  # a MethodHandle whose runtime was closed): a freed handle, said more
  # clearly (a subclass of InvalidHandleError).
  class ClosedError < InvalidHandleError; end

  # Some calls of a batch (MethodHandle#batch_raw, Runtime#batch_raw)
  # failed. Every call of the batch ran (a failing call does not stop the
  # ones after it); this error carries every outcome.
  #
  # #code, #details and #origin are those of the first failure; #results
  # holds, in call order, the response bytes (a binary String) of each call
  # that succeeded and the HMS::Error of each call that failed; #failures
  # maps the index of each failed call to its HMS::Error.
  #
  #   begin
  #     echo.batch_raw(requests)
  #   rescue HMS::BatchError => e
  #     e.failures.each { |i, error| warn "call #{i}: #{error.message}" }
  #     answers = e.results.grep(String)
  #   end
  class BatchError < Error
    # Array of String (response) or HMS::Error (failure), one per call.
    attr_reader :results
    # Hash of call index => HMS::Error, in call order.
    attr_reader :failures

    def initialize(results, failures)
      @results = results.freeze
      @failures = failures.freeze
      index, first = failures.first
      text = "#{failures.size} of #{results.size} calls of the batch failed; the first, call #{index}: " \
             "#{first.status_message}"
      super(text, code: first.code, details: first.details, origin: first.origin)
    end
  end
end
