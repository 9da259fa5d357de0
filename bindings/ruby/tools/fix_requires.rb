# frozen_string_literal: true

# Rewrites `require 'hms/x/y_pb'` in protoc's Ruby output (a tree under
# ARGV[0]) into require_relative, so the generated files load from inside the
# gem without adding lib/hms/gen to $LOAD_PATH. google/protobuf requires stay.

require "pathname"

root = Pathname.new(ARGV.fetch(0))
Dir.glob("**/*_pb.rb", base: root.to_s).sort.each do |rel|
  file = root + rel
  dir = Pathname.new(rel).dirname
  text = file.read
  text = text.gsub(/^require '(hms\/[\w\/]+)'$/) do
    target = Pathname.new(Regexp.last_match(1)).relative_path_from(dir)
    "require_relative '#{target}'"
  end
  file.write(text)
end
