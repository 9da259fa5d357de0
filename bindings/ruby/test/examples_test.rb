# frozen_string_literal: true

require_relative "test_helper"
require "open3"

# The example script runs, warning-free, and shows what it promises.
class ExamplesTest < Minitest::Test
  include HMSTest

  def test_demo_runs
    out, err, status = Open3.capture3(ruby_binary, "-w", File.join(GEM_ROOT, "examples", "demo.rb"))
    assert status.success?, err
    assert_empty err
    assert_includes out, "backend #{HMS.backend}"
    assert_includes out, "Hello, Ada!"
    assert_includes out, "batch of 3: one two three; one call: by handle"
    assert_includes out, "vetoed by hook `never-pause`"
    assert_includes out, "task SUCCEEDED: 42 pages"
    assert_match(/^  \d+ knowledge\.put /, out)
  end
end
