# frozen_string_literal: true

module HMS
  # What a caller presents to a runtime that authenticates calls
  # (docs/security.md): a JWT (Credentials.bearer) or an API token
  # (Credentials.api_key). Give them to a runtime once,
  # HMS::Runtime.new(config, credentials: ...), or to one call,
  # rt.call(..., credentials: ...).
  #
  # #inspect, #to_s, pp and Marshal never show the token.
  class Credentials
    BEARER = "bearer"
    API_KEY = "api-key"

    attr_reader :scheme, :principal

    # Credentials carrying a JWT (scheme "bearer"); +principal+, when given,
    # must be the token's principal.
    def self.bearer(jwt, principal: "")
      new(BEARER, jwt, principal)
    end

    # Credentials carrying an API token, its salted hash in the runtime's API tokens file
    # (scheme "api-key").
    def self.api_key(token, principal: "")
      new(API_KEY, token, principal)
    end

    def initialize(scheme, token, principal = "")
      raise ArgumentError, "the credentials' token must be a non-empty String" unless token.is_a?(String) && !token.empty?

      @scheme = scheme.to_s.freeze
      @token = token.dup.freeze
      @principal = principal.to_s.freeze
      freeze
    end

    def inspect
      "#<HMS::Credentials scheme=#{@scheme.inspect} token=<redacted> principal=#{@principal.inspect}>"
    end
    alias to_s inspect

    def pretty_print(printer)
      printer.text(inspect)
    end

    def marshal_dump
      raise TypeError, "HMS::Credentials are not marshalled: their token would be"
    end

    # @api private: the hms.v1.Credentials fields the core reads, empty
    # ones left out.
    def to_h
      { "scheme" => @scheme, "token" => @token, "principal" => @principal }.reject { |_, v| v.empty? }
    end
  end
end
