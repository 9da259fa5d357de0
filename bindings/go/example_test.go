package hms_test

import (
	"context"
	"errors"
	"fmt"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
)

func Example() {
	rt, err := hms.Open()
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	ctx := context.Background()

	resp, err := rt.System().Echo(ctx, &sysv1.EchoRequest{Text: "hi"})
	fmt.Println(resp.GetText(), err)

	var m map[string]any
	err = rt.CallValue(ctx, "hms.sys.v1.System/Echo", map[string]any{"text": "cbor"}, &m)
	fmt.Println(m["text"], err)

	err = rt.CallValue(ctx, "hms.sys.v1.System/Nope", nil, nil)
	fmt.Println(errors.Is(err, hms.ErrNotFound))
	// Output:
	// hi <nil>
	// cbor <nil>
	// true
}

func ExampleRuntime_Register() {
	rt, _ := hms.Open()
	defer rt.Close()
	svc, err := rt.Register(hms.ServiceDef{
		Name: "demo.v1.Math",
		Methods: []hms.Method{
			hms.ValueMethod("Add", func(_ context.Context, xs []int) (int, error) {
				if len(xs) == 0 {
					return 0, hms.NewError(hms.CodeInvalidArgument, "nothing to add")
				}
				sum := 0
				for _, x := range xs {
					sum += x
				}
				return sum, nil
			}),
		},
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	var sum int
	err = rt.CallValue(context.Background(), "demo.v1.Math/Add", []int{1, 2, 39}, &sum)
	fmt.Println(sum, err)
	out, _ := rt.CallRaw(context.Background(), "demo.v1.Math/Add", hms.FormatJSON, []byte("[40, 2]"))
	fmt.Println(string(out))
	err = rt.CallValue(context.Background(), "demo.v1.Math/Add", []int{}, &sum)
	fmt.Println(hms.CodeOf(err))
	// Output:
	// 42 <nil>
	// 42
	// INVALID_ARGUMENT
}

func ExampleRuntime_Method() {
	rt, _ := hms.Open()
	defer rt.Close()
	ctx := context.Background()
	echo, err := rt.Method("hms.sys.v1.System/Echo", hms.FormatJSON)
	if err != nil {
		panic(err)
	}
	defer echo.Close()
	out, err := echo.CallRaw(ctx, []byte(`{"text":"once"}`))
	fmt.Println(string(out), err)

	_, err = rt.Method("hms.sys.v1.System/Nope", hms.FormatJSON)
	fmt.Println(hms.CodeOf(err))
	// Output:
	// {"text":"once"} <nil>
	// NOT_FOUND
}

func ExampleMethodHandle_CallBatch() {
	rt, _ := hms.Open()
	defer rt.Close()
	echo, _ := rt.Method("hms.sys.v1.System/Echo", hms.FormatJSON)
	defer echo.Close()
	answers, err := echo.CallBatch(context.Background(), [][]byte{
		[]byte(`{"text":"a"}`),
		[]byte(`{"text":`), // does not parse
		[]byte(`{"text":"c"}`),
	})
	var be *hms.BatchError
	if errors.As(err, &be) {
		fmt.Println(be.Failed, "failed, first:", be.First, be.Code)
	}
	for _, a := range answers {
		fmt.Println(string(a))
	}
	// Output:
	// 1 failed, first: 1 DECODE_ERROR
	// {"text":"a"}
	//
	// {"text":"c"}
}
