package rest

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// Media types the server speaks.
const (
	mediaJSON     = "application/json"
	mediaYAML     = "application/yaml"
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
)

// target is the shape a client asked the response in.
type target int

const (
	targetObject target = iota
	targetTable
	targetPartialMetadata
	targetPartialMetadataList
)

// output is the negotiated response form.
type output struct {
	mediaType string
	info      runtime.SerializerInfo
	target    target
	// metaVersion is the meta.k8s.io version of a Table or PartialObjectMetadata response.
	metaVersion string
	// gzip says the client accepts a gzip-encoded body.
	gzip bool
}

func errNotAcceptable(accepted []string) error {
	return apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schemaGR(), "",
		fmt.Sprintf("only the following media types are accepted: %s", strings.Join(accepted, ", ")), 0, false)
}

// negotiate picks the response form of a request: its media type from Accept, and whether the
// body may be gzip-encoded.
func negotiate(codecs serializer.CodecFactory, r *http.Request) (output, error) {
	out, err := negotiateOutput(codecs, r.Header.Get("Accept"))
	if err != nil {
		return out, err
	}
	for _, enc := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if name, _, _ := strings.Cut(strings.TrimSpace(enc), ";"); name == "gzip" {
			out.gzip = true
		}
	}
	return out, nil
}

// negotiateOutput picks the first acceptable media range of the Accept header.
func negotiateOutput(codecs serializer.CodecFactory, accept string) (output, error) {
	if strings.TrimSpace(accept) == "" {
		accept = "*/*"
	}
	for _, clause := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		switch mt {
		case "*/*", "application/*":
			mt = mediaJSON
		case "application/json", "application/yaml", "application/vnd.kubernetes.protobuf":
		default:
			continue
		}
		out := output{mediaType: mt}
		if as := params["as"]; as != "" {
			g, v := params["g"], params["v"]
			if g != "meta.k8s.io" || (v != "v1" && v != "v1beta1") {
				continue
			}
			out.metaVersion = v
			switch as {
			case "Table":
				if mt == mediaProtobuf {
					continue
				}
				out.target = targetTable
			case "PartialObjectMetadata":
				out.target = targetPartialMetadata
			case "PartialObjectMetadataList":
				out.target = targetPartialMetadataList
			default:
				continue
			}
		}
		info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), mt)
		if !ok {
			continue
		}
		out.info = info
		return out, nil
	}
	return output{}, errNotAcceptable([]string{mediaJSON, mediaYAML, mediaProtobuf})
}

// jsonOutput is the fallback form for errors whose request could not be negotiated.
func jsonOutput(codecs serializer.CodecFactory) output {
	info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), mediaJSON)
	return output{mediaType: mediaJSON, info: info}
}

// decoderFor returns the serializer of a request body's Content-Type.
func decoderFor(codecs serializer.CodecFactory, contentType string) (runtime.SerializerInfo, error) {
	mt := mediaJSON
	if contentType != "" {
		var err error
		mt, _, err = mime.ParseMediaType(contentType)
		if err != nil {
			return runtime.SerializerInfo{}, unsupportedMediaType(mediaJSON, mediaYAML, mediaProtobuf)
		}
	}
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), mt)
	if !ok {
		return runtime.SerializerInfo{}, unsupportedMediaType(mediaJSON, mediaYAML, mediaProtobuf)
	}
	return info, nil
}

// unsupportedMediaType is upstream's 415 for a body in a format the endpoint does not take.
func unsupportedMediaType(accepted ...string) error {
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schemaGR(), "",
		fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s", strings.Join(accepted, ", ")), 0, false)
}
